/** Where the callback function stores result images, and the most that bucket takes. */
export const RESULT_BUCKET = "generated-images";
/** That bucket's file_size_limit (migration storage_buckets_and_policies); Storage refuses more. */
export const RESULT_BUCKET_MAX_BYTES = 20_000_000;
