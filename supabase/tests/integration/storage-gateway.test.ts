import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readVerifyJwt } from "../../../scripts/dev-stack/gateway/functions.ts";
import { LOCAL_ANON_KEY, userJwt } from "../../../scripts/dev-stack/gateway/keys.ts";
import { startTestGateway, type TestGateway } from "./support/gateway.ts";

// The gateway gives the local stack one base URL like a hosted project's: /functions/v1/<name>
// runs supabase/functions/<name>/index.ts under Deno. A throwaway function in a temporary
// functions directory proves the routing without shipping a function for it.
let stack: TestGateway;

const ECHO = `
Deno.serve(async (req: Request) => {
  const url = new URL(req.url);
  return Response.json({
    method: req.method,
    path: url.pathname,
    query: url.search,
    body: req.method === "GET" ? null : await req.text(),
    authorization: req.headers.get("authorization"),
    supabaseUrl: Deno.env.get("SUPABASE_URL"),
    hasServiceKey: (Deno.env.get("SUPABASE_SERVICE_ROLE_KEY") ?? "").length > 0,
  }, { status: url.searchParams.has("teapot") ? 418 : 200 });
});
`;

let functionsRoot: string;

beforeAll(async () => {
  functionsRoot = await mkdtemp(join(tmpdir(), "kiln-functions-"));
  const functionsDir = join(functionsRoot, "functions");
  for (const name of ["echo", "open"]) {
    await mkdir(join(functionsDir, name), { recursive: true });
    await writeFile(join(functionsDir, name, "index.ts"), ECHO);
  }
  const configPath = join(functionsRoot, "config.toml");
  await writeFile(configPath, `[api]\nport = 54321\n\n[functions.open]\n# called by a third party\nverify_jwt = false\n\n[functions.echo]\nverify_jwt = true\n`);
  stack = await startTestGateway({ functionsDir, configPath });
});

afterAll(async () => {
  await stack?.stop();
  await rm(functionsRoot, { recursive: true, force: true });
});

describe("functions", () => {
  it("routes /functions/v1/<name>/... to the function under Deno, without the /functions/v1 prefix", async () => {
    const res = await fetch(`${stack.gateway.url}/functions/v1/echo/sub/path?x=1`, {
      method: "POST",
      headers: { authorization: `Bearer ${LOCAL_ANON_KEY}`, "content-type": "text/plain" },
      body: "hello",
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      method: "POST",
      path: "/echo/sub/path",
      query: "?x=1",
      body: "hello",
      authorization: `Bearer ${LOCAL_ANON_KEY}`,
      supabaseUrl: stack.gateway.url,
      hasServiceKey: true,
    });
    const teapot = await fetch(`${stack.gateway.url}/functions/v1/echo?teapot`, { headers: { authorization: `Bearer ${userJwt(crypto.randomUUID())}` } });
    expect(teapot.status).toBe(418);
  }, 60_000);

  it("verifies the JWT unless config.toml says verify_jwt = false", async () => {
    const missing = await fetch(`${stack.gateway.url}/functions/v1/echo`);
    expect(missing.status).toBe(401);
    const forged = await fetch(`${stack.gateway.url}/functions/v1/echo`, {
      headers: { authorization: `Bearer ${userJwt(crypto.randomUUID(), { secret: "y".repeat(40) })}` },
    });
    expect(forged.status).toBe(401);
    expect(await forged.json()).toEqual({ code: 401, message: "Invalid JWT" });
    const open = await fetch(`${stack.gateway.url}/functions/v1/open/callback`, { method: "POST", body: "{}" });
    expect(open.status).toBe(200);
    expect(await open.json()).toMatchObject({ path: "/open/callback", authorization: null });
  }, 60_000);

  it("answers unknown functions, /rest/v1 and unknown paths with 404", async () => {
    for (const path of ["/functions/v1/nope", "/functions/v1/..%2Fecho", "/rest/v1/plans", "/"]) {
      const res = await fetch(`${stack.gateway.url}${path}`, { headers: { authorization: `Bearer ${LOCAL_ANON_KEY}` } });
      expect(res.status, path).toBe(404);
    }
  });

  it("reads verify_jwt per function from config.toml", () => {
    const settings = readVerifyJwt(`[functions.a]\nverify_jwt = false\n[functions."b-c"]\nverify_jwt = true\n[db]\nverify_jwt = false\n`);
    expect([...settings]).toEqual([["a", false], ["b-c", true]]);
  });
});
