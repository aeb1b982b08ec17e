import { describe, expect, it } from "vitest";
import { DEFAULT_CATALOGUE, loadCatalogue } from "../../../../scripts/dev-stack/kie-emulator/catalogue.ts";
import { databaseUrl } from "../support/db.ts";
import { startEmulator } from "./support.ts";

const byModel = <T extends { kieModel: string }>(list: T[]) => [...list].sort((a, b) => a.kieModel.localeCompare(b.kieModel));

describe("model facts", () => {
  it("the built-in catalogue equals public.models (ids, image field, image counts, prompt max, aspect ratios)", async () => {
    const fromDb = await loadCatalogue(databaseUrl());
    expect(fromDb.length).toBeGreaterThan(0);
    expect(byModel(DEFAULT_CATALOGUE)).toEqual(byModel(fromDb));
  });

  it("--db-url: an emulator reading public.models validates with the same rules", async () => {
    const kie = await startEmulator({ databaseUrl: databaseUrl() });
    expect(kie.emulator.state.catalogue).toEqual(await loadCatalogue(databaseUrl()));
    const tooLong = await kie.create({ model: "google/nano-banana-edit", input: { prompt: "x".repeat(5001), image_urls: ["http://127.0.0.1:9/a.png"] } });
    expect(tooLong.json).toMatchObject({ code: 422, msg: expect.stringContaining("5000") });
  });
});
