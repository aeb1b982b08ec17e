/**
 * Runs one Edge Function under Deno for the local gateway: `deno run ... function-runner.ts
 * <file URL of index.ts>`. The function calls `Deno.serve(handler)` as on the platform; this wrapper pins the
 * listener to 127.0.0.1 on the port the gateway chose (KILN_FUNCTION_PORT) and prints a ready
 * line once it listens. Development only.
 */
type Handler = (request: Request, info: unknown) => Response | Promise<Response>;
type ServeOptions = { port?: number; hostname?: string; onListen?: (addr: unknown) => void; handler?: Handler };
interface DenoLike {
  args: string[];
  env: { get(name: string): string | undefined };
  serve: (options: ServeOptions, handler?: Handler) => unknown;
}

/** The gateway waits for this line on stdout (functions.ts). */
const READY_LINE = "kiln-function-ready";

const deno = (globalThis as unknown as { Deno: DenoLike }).Deno;
const port = Number(deno.env.get("KILN_FUNCTION_PORT"));
const entry = deno.args[0];
const serve = deno.serve.bind(deno);

deno.serve = (first: ServeOptions | Handler, second?: Handler) => {
  const options = typeof first === "function" ? {} : first;
  const handler = typeof first === "function" ? first : second ?? first.handler;
  return serve({
    ...options,
    port,
    hostname: "127.0.0.1",
    handler,
    onListen: () => console.log(READY_LINE),
  });
};

await import(entry);
