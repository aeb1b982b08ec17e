/**
 * The KIE emulator as a library: `startKieEmulator({...})` listens on 127.0.0.1 and returns its
 * URL and a `close()`. The command line (cli.ts) is a thin wrapper around it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { handleAdmin } from "./admin.ts";
import { handleCreateTask, handleCredit, handleDownloadUrl, handleRecordInfo, serveDownload, serveFile } from "./api.ts";
import { DEFAULT_CATALOGUE, loadCatalogue } from "./catalogue.ts";
import { json, type Outcome, send } from "./http.ts";
import { type KieEmulatorOptions, optionsSchema } from "./options.ts";
import { EmulatorState } from "./state.ts";

export interface KieEmulator {
  /** http://127.0.0.1:PORT, no trailing slash. */
  url: string;
  port: number;
  /** The first accepted API key. */
  apiKey: string;
  /** In-process access to tasks, counters and settings (the admin endpoints expose the same). */
  state: EmulatorState;
  close(): Promise<void>;
}

async function route(state: EmulatorState, req: IncomingMessage, url: URL): Promise<Outcome> {
  const method = req.method ?? "GET";
  const path = url.pathname;
  if (path === "/api/v1/jobs/createTask" && method === "POST") return handleCreateTask(state, req);
  if (path === "/api/v1/jobs/recordInfo" && method === "GET") return handleRecordInfo(state, req, url);
  if (path === "/api/v1/chat/credit" && method === "GET") return handleCredit(state, req);
  if (path === "/api/v1/common/download-url" && method === "POST") return handleDownloadUrl(state, req);
  if (path.startsWith("/__admin/") || path === "/__admin") return { reply: await handleAdmin(state, req, url) };
  const file = /^\/files\/([0-9a-f]+\/\d+\.(?:png|gif|html))$/.exec(path);
  if (file && method === "GET") return { reply: serveFile(state, file[1]) };
  const download = /^\/download\/([0-9a-f]+)$/.exec(path);
  if (download && method === "GET") return { reply: serveDownload(state, download[1]) };
  return { reply: json(404, { code: 404, msg: `no endpoint ${method} ${path}`, data: null }) };
}

function respond(req: IncomingMessage, res: ServerResponse, outcome: Outcome): void {
  if ("resetBefore" in outcome || outcome.resetAfter) {
    req.socket.destroy();
    return;
  }
  if (!outcome.delay) {
    send(res, outcome.reply);
    return;
  }
  // Not on the emulator's timers: an admin reset must not strand a client mid-request. close()
  // destroys the connection; the timer then finds the response gone.
  setTimeout(() => res.destroyed || send(res, outcome.reply), outcome.delay).unref();
}

/** A port that was free a moment ago and is closed again (fetch refuses low ports like 1). */
export async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", () => resolve()));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

export async function startKieEmulator(options: KieEmulatorOptions = {}): Promise<KieEmulator> {
  const { catalogue, log, databaseUrl, ...rest } = options;
  const config = optionsSchema.parse(rest);
  const models = catalogue ?? (databaseUrl ? await loadCatalogue(databaseUrl) : DEFAULT_CATALOGUE);
  const state = new EmulatorState(config, models, log ?? (() => {}));

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", state.baseUrl || "http://127.0.0.1");
    route(state, req, url)
      .then((outcome) => respond(req, res, outcome))
      .catch((error: Error) => {
        state.log(`${req.method} ${url.pathname}: ${error.stack ?? error.message}`);
        if (!res.headersSent) send(res, json(500, { code: 500, msg: "emulator error", data: null }));
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  state.baseUrl = `http://${config.publicHost}:${port}`;
  state.closedPort = await closedPort();

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    apiKey: config.apiKeys[0],
    state,
    async close() {
      state.timers.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
