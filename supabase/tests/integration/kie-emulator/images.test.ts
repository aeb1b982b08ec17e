/** Result images (issue item 4): real PNGs, sized right, per-prompt, derived from the input. */
import type { ServerResponse } from "node:http";
import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { closedPort } from "../../../../scripts/dev-stack/kie-emulator/server.ts";
import { download, fileServer, imagen, resultUrls, solidPng, startEmulator, waitFor } from "./support.ts";

async function resultPng(kie: Awaited<ReturnType<typeof startEmulator>>, body: unknown) {
  const data = await kie.settled(await kie.createOk(body));
  expect(data.state).toBe("success");
  const file = await download(resultUrls(data)[0]);
  expect(file.status).toBe(200);
  expect(file.type).toBe("image/png");
  return { png: PNG.sync.read(file.bytes), bytes: file.bytes, data };
}

function pixel(png: PNG, x: number, y: number): [number, number, number] {
  const i = (y * png.width + x) * 4;
  return [png.data[i], png.data[i + 1], png.data[i + 2]];
}

const nanoEdit = (urls: string[], prompt = "make it pop", aspect = "auto") => ({
  model: "google/nano-banana-edit",
  input: { prompt, image_urls: urls, aspect_ratio: aspect },
});

describe("text-to-image results", () => {
  it.each([
    ["google/imagen4", "1:1", 128, 128],
    ["google/imagen4", "16:9", 128, 72],
    ["google/imagen4", "9:16", 72, 128],
    ["google/imagen4-fast", "3:4", 96, 128],
    ["google/imagen4-ultra", "4:3", 128, 96],
    ["nano-banana-pro", "21:9", 128, 55],
    ["nano-banana-pro", "2:3", 85, 128],
  ])("%s at %s decodes as a %ix%i PNG", async (model, aspect, width, height) => {
    const kie = await startEmulator({ imageSize: 128 });
    const { png } = await resultPng(kie, { model, input: { prompt: "a kite", aspect_ratio: aspect } });
    expect([png.width, png.height]).toEqual([width, height]);
  });

  it("Imagen without an aspect ratio renders 16:9, KIE's default", async () => {
    const kie = await startEmulator({ imageSize: 64 });
    const { png } = await resultPng(kie, { model: "google/imagen4", input: { prompt: "a kite" } });
    expect([png.width, png.height]).toEqual([64, 36]);
  });

  it("different prompts give visibly different images; the same prompt the same image", async () => {
    const kie = await startEmulator({ imageSize: 64 });
    const a = await resultPng(kie, imagen("a red barn"));
    const b = await resultPng(kie, imagen("a blue boat"));
    const again = await resultPng(kie, imagen("a red barn"));
    expect(again.bytes.equals(a.bytes)).toBe(true);
    let differing = 0;
    for (let i = 0; i < a.png.data.length; i += 4) if (a.png.data[i] !== b.png.data[i] || a.png.data[i + 1] !== b.png.data[i + 1]) differing++;
    expect(differing).toBeGreaterThan((64 * 64) / 4);
  });
});

describe("image-to-image results", () => {
  it("come from the downloaded input: a red input gives a red result, a blue one a blue result, auto keeps its shape", async () => {
    const hits: string[] = [];
    const serve = (bytes: Buffer) => (req: { url?: string }, res: ServerResponse) => {
      hits.push(req.url ?? "");
      res.writeHead(200, { "Content-Type": "image/png" }).end(bytes);
    };
    const files = await fileServer({ "/red.png": serve(solidPng(40, 20, [230, 20, 20])), "/blue.png": serve(solidPng(20, 40, [20, 20, 230])) });
    const kie = await startEmulator({ imageSize: 64 });
    const red = await resultPng(kie, nanoEdit([`${files}/red.png`]));
    const blue = await resultPng(kie, nanoEdit([`${files}/blue.png`]));
    expect(hits).toEqual(["/red.png", "/blue.png"]);
    expect([red.png.width, red.png.height]).toEqual([64, 32]);
    expect([blue.png.width, blue.png.height]).toEqual([32, 64]);
    for (const [x, y] of [[0, 0], [10, 5], [31, 20], [63, 31]]) {
      const [r, g, b] = pixel(red.png, x, y);
      expect(r).toBeGreaterThan(g + 60);
      expect(r).toBeGreaterThan(b + 60);
    }
    for (const [x, y] of [[0, 0], [5, 10], [20, 31], [31, 63]]) {
      const [r, g, b] = pixel(blue.png, x, y);
      expect(b).toBeGreaterThan(r + 60);
      expect(b).toBeGreaterThan(g + 60);
    }
  });

  it("inputs that are not PNG (jpeg bytes) still shape the result, through their bytes' hash", async () => {
    const jpeg = (n: number) => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(64, n)]);
    const files = await fileServer({ "/a.jpg": jpeg(1), "/b.jpg": jpeg(2) });
    const kie = await startEmulator({ imageSize: 32 });
    const a = await resultPng(kie, nanoEdit([`${files}/a.jpg`], "same prompt", "1:1"));
    const b = await resultPng(kie, nanoEdit([`${files}/b.jpg`], "same prompt", "1:1"));
    expect(a.bytes.equals(b.bytes)).toBe(false);
  });

  it.each([
    ["a 404", { "/x.png": (_req: unknown, res: ServerResponse) => res.writeHead(404).end("gone") }, {}, "HTTP 404"],
    ["a timeout", { "/x.png": () => {} }, { fetchTimeoutMs: 150 }, "timed out"],
    ["a file over the size cap", { "/x.png": solidPng(64, 64, [1, 2, 3]) }, { maxInputBytes: 100 }, "larger than 100 bytes"],
    ["a file that is no image", { "/x.png": Buffer.from("<html>not an image</html>") }, {}, "not a jpeg, png or webp"],
  ])("fail the task like KIE when the input download gets %s", async (_label, routes, options, message) => {
    const files = await fileServer(routes as Parameters<typeof fileServer>[0]);
    const kie = await startEmulator(options);
    const data = await kie.settled(await kie.createOk(nanoEdit([`${files}/x.png`])));
    expect(data).toMatchObject({ state: "fail", failCode: "422", resultJson: "", creditsConsumed: 0 });
    expect(data.failMsg).toContain(message);
  });

  it("fail when the input host refuses connections", async () => {
    const kie = await startEmulator();
    const data = await kie.settled(await kie.createOk(nanoEdit([`http://127.0.0.1:${await closedPort()}/x.png`])));
    expect(data).toMatchObject({ state: "fail", failCode: "422" });
    expect(data.failMsg).toContain("ECONNREFUSED");
  });
});

describe("result lifetime and download-url", () => {
  it("result URLs answer 404 once the result TTL has passed", async () => {
    const kie = await startEmulator({ resultTtlMs: 400 });
    const data = await kie.settled(await kie.createOk(imagen()));
    const url = resultUrls(data)[0];
    expect((await download(url)).status).toBe(200);
    await waitFor(async () => (await download(url)).status === 404, 3000);
  });

  it("download-url returns a fresh link to the same bytes, also after the result URL expired", async () => {
    const kie = await startEmulator();
    const data = await kie.settled(await kie.createOk(imagen()));
    const url = resultUrls(data)[0];
    const original = await download(url);
    expect(original.status).toBe(200);
    await kie.admin("PATCH", "config", { resultTtlMs: 0 });
    expect((await download(url)).status).toBe(404);
    const reply = await kie.call<string>("POST", "/api/v1/common/download-url", { url });
    expect(reply.json).toMatchObject({ code: 200, msg: "success", data: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/download\/[0-9a-f]{32}$/) });
    const fresh = await download(reply.json.data);
    expect(fresh.status).toBe(200);
    expect(fresh.type).toBe("image/png");
    expect(fresh.bytes.equals(original.bytes)).toBe(true);
    const second = await kie.call<string>("POST", "/api/v1/common/download-url", { url });
    expect(second.json.data).not.toBe(reply.json.data);
  });

  it("download-url links stop working after their lifetime, and when the media is gone", async () => {
    const kie = await startEmulator();
    const data = await kie.settled(await kie.createOk(imagen()));
    const mint = async () => (await kie.call<string>("POST", "/api/v1/common/download-url", { url: resultUrls(data)[0] })).json.data;
    const link = await mint();
    expect((await download(link)).status).toBe(200);
    await kie.admin("PATCH", "config", { downloadTtlMs: 0 });
    expect((await download(link)).status).toBe(404);
    await kie.admin("PATCH", "config", { downloadTtlMs: 60_000 });
    const other = await mint();
    expect((await download(other)).status).toBe(200);
    await kie.admin("PATCH", "config", { mediaTtlMs: 0 });
    expect((await download(other)).status).toBe(404);
  });

  it("download-url refuses URLs KIE did not generate (422), a missing url (400), expired media (404), a bad key (401)", async () => {
    const kie = await startEmulator();
    const data = await kie.settled(await kie.createOk(imagen()));
    const url = resultUrls(data)[0];
    const post = (body: unknown, key?: string) => kie.call("POST", "/api/v1/common/download-url", body, key);
    expect((await post({ url: "https://example.com/x.png" })).json.code).toBe(422);
    expect((await post({ url: `${kie.url}/files/0123/0.png` })).json.code).toBe(422);
    expect((await post({})).json.code).toBe(400);
    expect((await post({ url }, "bad")).json.code).toBe(401);
    expect((await post({ url })).json.code).toBe(200);
    await kie.admin("PATCH", "config", { mediaTtlMs: 0 });
    expect((await post({ url })).json).toMatchObject({ code: 404, data: null });
  });
});
