/**
 * Model facts and createTask input validation (kie-api.md §5).
 *
 * The built-in catalogue mirrors `public.models` (a test compares the two, so they cannot drift);
 * `--db-url` reads the rows instead.
 */
import postgres from "postgres";

export interface ModelFacts {
  /** KIE model id (models.kie_model). */
  kieModel: string;
  /** Input field carrying image URLs; null for text-to-image. */
  imageInputField: string | null;
  minInputImages: number;
  maxInputImages: number;
  maxPromptLength: number;
  aspectRatios: string[];
}

export const DEFAULT_CATALOGUE: ModelFacts[] = [
  {
    kieModel: "google/nano-banana-edit",
    imageInputField: "image_urls",
    minInputImages: 1,
    maxInputImages: 10,
    maxPromptLength: 5000,
    aspectRatios: ["1:1", "9:16", "16:9", "3:4", "4:3", "3:2", "2:3", "5:4", "4:5", "21:9", "auto"],
  },
  {
    kieModel: "nano-banana-pro",
    imageInputField: "image_input",
    minInputImages: 0,
    maxInputImages: 8,
    maxPromptLength: 10000,
    aspectRatios: ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "auto"],
  },
  ...["google/imagen4-fast", "google/imagen4", "google/imagen4-ultra"].map((kieModel) => ({
    kieModel,
    imageInputField: null,
    minInputImages: 0,
    maxInputImages: 0,
    maxPromptLength: 5000,
    aspectRatios: ["1:1", "16:9", "9:16", "3:4", "4:3"],
  })),
];

/** KIE applies 16:9 to Imagen when no aspect ratio is sent (§5); everything else renders square. */
const IMPLICIT_ASPECT_RATIO: Record<string, string> = {
  "google/imagen4-fast": "16:9",
  "google/imagen4": "16:9",
  "google/imagen4-ultra": "16:9",
};

/** Reads model facts from `public.models` (every row: KIE accepts a model we have switched off). */
export async function loadCatalogue(databaseUrl: string): Promise<ModelFacts[]> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<
      {
        kie_model: string;
        image_input_field: string | null;
        min_input_images: number;
        max_input_images: number;
        max_prompt_length: number;
        aspect_ratios: string[];
      }[]
    >`select kie_model, image_input_field, min_input_images, max_input_images, max_prompt_length, aspect_ratios
        from public.models order by kie_model, key`;
    const byModel = new Map<string, ModelFacts>();
    for (const row of rows) {
      const facts: ModelFacts = {
        kieModel: row.kie_model,
        imageInputField: row.image_input_field,
        minInputImages: row.min_input_images,
        maxInputImages: row.max_input_images,
        maxPromptLength: row.max_prompt_length,
        aspectRatios: row.aspect_ratios,
      };
      const seen = byModel.get(row.kie_model);
      if (seen && JSON.stringify(seen) !== JSON.stringify(facts)) {
        throw new Error(`public.models has conflicting rows for KIE model ${row.kie_model}`);
      }
      byModel.set(row.kie_model, facts);
    }
    return [...byModel.values()];
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export interface ValidCreate {
  ok: true;
  facts: ModelFacts;
  prompt: string;
  aspectRatio: string;
  imageUrls: string[];
  callBackUrl: string | null;
}
export type CreateValidation = ValidCreate | { ok: false; code: number; msg: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function isHttpUrl(value: unknown): value is string {
  if (typeof value !== "string") return false;
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}

/** The createTask body rules KIE enforces: 422 with a readable message when one is broken. */
export function validateCreate(body: unknown, catalogue: ModelFacts[]): CreateValidation {
  const bad = (msg: string) => ({ ok: false as const, code: 422, msg });
  if (!isObject(body)) return bad("request body must be a JSON object");
  if (typeof body.model !== "string" || body.model === "") return bad("model is required");
  const facts = catalogue.find((m) => m.kieModel === body.model);
  if (!facts) return bad(`model ${body.model} is not supported`);
  let callBackUrl: string | null = null;
  if (body.callBackUrl !== undefined && body.callBackUrl !== null && body.callBackUrl !== "") {
    if (!isHttpUrl(body.callBackUrl)) return bad("callBackUrl must be an http(s) URL");
    callBackUrl = body.callBackUrl;
  }
  const input = body.input;
  if (!isObject(input)) return bad("input is required");
  if (typeof input.prompt !== "string" || input.prompt.trim() === "") return bad("input.prompt is required");
  if (input.prompt.length > facts.maxPromptLength) {
    return bad(`input.prompt is longer than ${facts.maxPromptLength} characters`);
  }
  // Nano Edit's older docs call the field image_size; accept either, aspect_ratio first.
  const requested = input.aspect_ratio ?? input.image_size;
  let aspectRatio: string;
  if (requested === undefined || requested === null) {
    aspectRatio = IMPLICIT_ASPECT_RATIO[facts.kieModel] ?? "1:1";
  } else if (typeof requested === "string" && facts.aspectRatios.includes(requested)) {
    aspectRatio = requested;
  } else {
    return bad(`aspect_ratio must be one of ${facts.aspectRatios.join(", ")}`);
  }
  let imageUrls: string[] = [];
  if (facts.imageInputField) {
    const field = facts.imageInputField;
    const urls = input[field] ?? [];
    if (!Array.isArray(urls)) return bad(`input.${field} must be an array of URLs`);
    if (urls.length < facts.minInputImages) return bad(`input.${field} needs at least ${facts.minInputImages} image(s)`);
    if (urls.length > facts.maxInputImages) return bad(`input.${field} takes at most ${facts.maxInputImages} images`);
    if (!urls.every(isHttpUrl)) return bad(`input.${field} must hold publicly fetchable http(s) URLs`);
    imageUrls = urls;
  }
  return { ok: true, facts, prompt: input.prompt, aspectRatio, imageUrls, callBackUrl };
}
