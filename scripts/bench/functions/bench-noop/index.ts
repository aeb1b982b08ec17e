// The callback path's baseline: the same HTTP round trip through the gateway to a Deno function
// that reads the body and answers like kie-callback does, without doing anything else.
declare const Deno: { serve(handler: (request: Request) => Promise<Response>): unknown };

Deno.serve(async (request: Request) => {
  await request.text();
  return Response.json({ code: 200, msg: "success" });
});
