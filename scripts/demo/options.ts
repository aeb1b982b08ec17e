import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";

/** The demo's own stack, made again when it no longer fits the installed pg_net. */
export const DEFAULT_STACK_DIR = join(tmpdir(), "kiln-demo");

export const USAGE = `usage: npm run demo -- [--keep] [--out DIR] [--kie-key KEY --public-url URL]

Brings up the local stack, acts as the app does (a user with credits, an upload, one template
generation from the upload, one text-to-image generation with a style, one generation the KIE
emulator fails), prints every status change as it streams out of the supabase_realtime
publication, saves the results, then stops what it started.

  --keep            leave the stack running afterwards (stop it with: npm run stack:down, with
                    the same KILN_STACK_* environment the demo printed)
  --out DIR         where the result images go (default: demo-output)
  --timeout S       seconds each phase may wait for its jobs (default: 60, with --kie-key 600)
  --kie-key KEY     run against the real KIE (https://api.kie.ai) with this API key instead of the
                    emulator; KIE_API_KEY in the environment does the same. KIE must reach the
                    stack, so --public-url is required with it
  --public-url URL  the public https origin of a tunnel to the gateway port, e.g.
                    \`cloudflared tunnel --url http://127.0.0.1:54321\`; KIE calls back at
                    <URL>/functions/v1/kie-callback (the functions_base_url Vault secret) and
                    fetches the uploaded photo through a signed <URL>/storage/v1 URL
                    (also KILN_DEMO_PUBLIC_URL)
  -h, --help        this text

Environment: KILN_STACK_DIR (default: kiln-demo in the system's temporary directory),
KILN_STACK_DB_PORT (54322), KILN_STACK_GATEWAY_PORT (54321), KILN_STACK_KIE_PORT (54329).
Exit status: 0 when every step passed, 1 naming the step that failed, 2 for bad arguments.`;

export class UsageError extends Error {}

const port = z.coerce.number().int().min(1).max(65535);
const httpsOrigin = z
  .url({ protocol: /^https$/, error: "--public-url must be an https URL" })
  .transform((u) => u.replace(/\/+$/, ""));

const schema = z
  .object({
    keep: z.boolean(),
    out: z.string().min(1),
    timeoutSeconds: z.coerce.number({ error: "--timeout must be a whole number of seconds from 1 to 3600" }).int().positive().max(3600).optional(),
    kieKey: z.string().trim().min(1, "--kie-key must not be empty").optional(),
    publicUrl: httpsOrigin.optional(),
    stackDir: z.string().min(1),
    dbPort: port,
    gatewayPort: port,
    kiePort: port,
  })
  .refine((o) => !o.kieKey || o.publicUrl, { message: "--kie-key needs --public-url: KIE must reach the callback function and the photo" })
  .refine((o) => !o.publicUrl || o.kieKey, { message: "--public-url is only used with --kie-key (the emulator runs on this machine)" });

export type DemoOptions = Omit<z.infer<typeof schema>, "timeoutSeconds"> & { timeoutSeconds: number };

/** The demo's options from its arguments and environment, or a UsageError; null for --help. */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): DemoOptions | null {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: "boolean", short: "h" },
        keep: { type: "boolean" },
        out: { type: "string" },
        timeout: { type: "string" },
        "kie-key": { type: "string" },
        "public-url": { type: "string" },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return null;
  const parsed = schema.safeParse({
    keep: values.keep ?? false,
    out: resolve(values.out ?? "demo-output"),
    timeoutSeconds: values.timeout,
    kieKey: values["kie-key"] ?? (env.KIE_API_KEY || undefined),
    publicUrl: values["public-url"] ?? (env.KILN_DEMO_PUBLIC_URL || undefined),
    stackDir: env.KILN_STACK_DIR || DEFAULT_STACK_DIR,
    dbPort: env.KILN_STACK_DB_PORT || 54322,
    gatewayPort: env.KILN_STACK_GATEWAY_PORT || 54321,
    kiePort: env.KILN_STACK_KIE_PORT || 54329,
  });
  if (!parsed.success) throw new UsageError(parsed.error.issues.map((i) => i.message).join("; "));
  const o = parsed.data;
  return { ...o, timeoutSeconds: o.timeoutSeconds ?? (o.kieKey ? 600 : 60) };
}
