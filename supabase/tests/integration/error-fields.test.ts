import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "./support/db.ts";

// A refusal's `details` and `hint` are absent when it has nothing to say, as in Postgres' own errors
// (PostgREST answers null for a field the error does not carry, and the empty string for one sent
// empty). The fields are read from the protocol (postgres.js leaves a missing field undefined),
// so a field sent empty and a field not sent are told apart, which PL/pgSQL's diagnostics cannot.
const sql = connect({ max: 2 });
const userId = randomUUID();

type Fields = { code?: string; detail?: string; hint?: string };

/** The error a call fails with, as PostgREST runs it: one transaction, role and claims set locally. */
async function refusal(claims: Record<string, unknown>, query: string): Promise<Fields> {
  try {
    await sql.begin(async (tx) => {
      await tx.unsafe(`set local role ${claims.role === "anon" ? "anon" : "authenticated"}`);
      await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
      await tx.unsafe(query);
    });
  } catch (error) {
    const { code, detail, hint } = error as Fields;
    return { code, detail, hint };
  }
  throw new Error(`expected a refusal: ${query}`);
}

beforeAll(async () => {
  await sql`insert into auth.users (id, email) values (${userId}, ${`${userId}@error-fields.kiln.local`})`;
});

afterAll(async () => {
  await sql`delete from auth.users where id = ${userId}`;
  await sql.end();
});

describe("KL refusals carry details and hint only when they have something to say", () => {
  const user = { sub: userId, role: "authenticated" };
  const noUser = { role: "authenticated" };
  const missingJob = "00000000-0000-4000-8000-00000000e401";

  it.each([
    ["a detail and a hint (KL027)", user, `select public.start_generation(prompt => 'a cat', idempotency_key => ' ')`,
      { code: "KL027", detail: "use 1 to 200 characters, with something visible", hint: "Send a fresh random key, such as a UUID, for each new generation." }],
    ["a detail, no hint (KL021)", user, `select public.retry_generation('${missingJob}')`,
      { code: "KL021", detail: `no job ${missingJob} of yours`, hint: undefined }],
    ["a hint, no detail (KL001)", noUser, `select public.start_generation(prompt => 'a cat')`,
      { code: "KL001", detail: undefined, hint: "Sign in before generating." }],
    ["neither (KL001)", noUser, `select public.cancel_generation('${missingJob}')`,
      { code: "KL001", detail: undefined, hint: undefined }],
    ["neither, as Postgres' own refusal of the anon key (42501)", { role: "anon" }, `select public.start_generation(prompt => 'a cat')`,
      { code: "42501", detail: undefined, hint: undefined }],
  ])("%s", async (_label, claims, query, expected) => {
    expect(await refusal(claims, query)).toEqual(expected);
  });
});
