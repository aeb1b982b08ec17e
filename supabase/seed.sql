-- Local and demo content: style presets and a starter catalog of templates.
--
-- Plans (free, paid, pro) and the model catalog are NOT here: they are reference data the
-- functions depend on, so they ship with the migrations (20261125090300_plans_models_styles.sql)
-- and exist on every environment. This file only adds content an operator would curate per
-- environment, so a fresh local stack, the demo and the tests have something real to show.
--
-- Idempotent: every row has a stable key (styles.key, fixed template uuids) and is upserted, so
-- the file can be re-applied to refresh the content without duplicating it. Tests and the demo
-- refer to templates by these ids; keep them stable.
--
-- Template definitions follow the field format documented at the top of
-- 20261125090400_templates.sql; the database refuses an invalid one (KL024). Prompts are written
-- for image-to-image models (the user's photos are the input) and end without a full stop, so a
-- style preset's fragment can follow after a comma. Optional fields sit in their own
-- comma-separated slot, so leaving them empty leaves no dangling words.

-- ---------------------------------------------------------------------------------------------
-- Styles: the Create tab's style picker. The fragment is appended after a comma.
-- ---------------------------------------------------------------------------------------------
insert into public.styles (key, name, prompt_fragment, thumbnail_url, "order", is_active) values
  ('cinematic', 'Cinematic',
   'cinematic film still, anamorphic 35mm lens, shallow depth of field, moody teal and orange color grade',
   'https://images.kiln.example/styles/cinematic.webp', 10, true),
  ('photoreal', 'Photoreal',
   'photorealistic, natural soft daylight, true-to-life skin and materials, shot on a full-frame camera, 50mm lens',
   'https://images.kiln.example/styles/photoreal.webp', 20, true),
  ('watercolor', 'Watercolor',
   'delicate watercolor painting, loose wet-on-wet washes, visible cold-press paper texture, soft color bleeds',
   'https://images.kiln.example/styles/watercolor.webp', 30, true),
  ('anime', 'Anime',
   'anime key visual, clean confident line art, vibrant cel shading, luminous sky gradients',
   'https://images.kiln.example/styles/anime.webp', 40, true),
  ('render-3d', '3D Render',
   'stylized 3D render, soft global illumination, subsurface scattering, smooth rounded forms, studio backdrop',
   'https://images.kiln.example/styles/render-3d.webp', 50, true),
  ('oil-painting', 'Oil Painting',
   'classical oil painting on linen canvas, rich impasto brushwork, warm chiaroscuro lighting',
   'https://images.kiln.example/styles/oil-painting.webp', 60, true),
  ('pixel-art', 'Pixel Art',
   '16-bit pixel art, limited retro palette, crisp pixel edges, no anti-aliasing',
   'https://images.kiln.example/styles/pixel-art.webp', 70, true),
  ('neon-noir', 'Neon Noir',
   'neon-noir night scene, rain-slicked streets, glowing magenta and cyan signage, volumetric haze',
   'https://images.kiln.example/styles/neon-noir.webp', 80, true)
on conflict (key) do update set
  name = excluded.name,
  prompt_fragment = excluded.prompt_fragment,
  thumbnail_url = excluded.thumbnail_url,
  "order" = excluded."order",
  is_active = excluded.is_active;

-- ---------------------------------------------------------------------------------------------
-- Templates. Ids 5eed0000-0000-4000-8000-0000000000NN, NN = two digits, stable forever.
-- ---------------------------------------------------------------------------------------------
insert into public.templates
  (id, name, description, thumbnail_url, category, prompt_template, input_fields,
   default_aspect_ratio, is_premium, is_active, "order", min_images, max_images)
values
  -- 3D Render ---------------------------------------------------------------------------------
  ('5eed0000-0000-4000-8000-000000000001', 'Collectible Figure',
   'Turn yourself, a friend or a pet into a boxed collectible figure on a desk.',
   'https://images.kiln.example/templates/collectible-figure.webp', '3D Render',
   'Turn the main subject of the photo into a {scale} collectible PVC figure standing on {base}, '
   || 'placed on a tidy computer desk, {packaging}, faithful likeness, realistic product photography, '
   || 'soft studio lighting, crisp focus',
   $json$[
     {"name": "scale", "label": "Scale", "type": "select",
      "options": ["1/7 scale", "1/4 scale", "1/12 scale"], "default_value": "1/7 scale", "required": true},
     {"name": "base", "label": "Display base", "type": "select",
      "options": ["a round clear acrylic base", "a rocky diorama base", "a dark wooden plinth"],
      "default_value": "a round clear acrylic base", "required": true},
     {"name": "packaging", "label": "Show the box", "type": "toggle",
      "options": ["", "with its retail box, printed with the figure's artwork, standing beside it"],
      "default_value": true}
   ]$json$,
   '3:4', false, true, 10, 1, 1),

  ('5eed0000-0000-4000-8000-000000000002', 'Clay Character',
   'Remake your photo as a handmade stop-motion clay figure.',
   'https://images.kiln.example/templates/clay-character.webp', '3D Render',
   'Recreate the person in the photo as a handmade stop-motion clay character with a {palette} color palette, '
   || 'oversized head and small rounded body, keep their hairstyle, outfit and expression recognizable, '
   || '{fingerprints}, miniature set, soft diffused light',
   $json$[
     {"name": "palette", "label": "Palette", "type": "select",
      "options": ["soft pastel", "bright and saturated", "warm earthy"], "default_value": "soft pastel"},
     {"name": "fingerprints", "label": "visible fingerprint marks in the clay", "type": "toggle",
      "default_value": true}
   ]$json$,
   '1:1', false, true, 20, 1, 1),

  ('5eed0000-0000-4000-8000-000000000003', 'Isometric Room',
   'Shrink a photo of your room into a tiny isometric diorama.',
   'https://images.kiln.example/templates/isometric-room.webp', '3D Render',
   'Rebuild the room in the photo as a tiny isometric 3D diorama cut out as a cube, {look} style, '
   || 'keep the furniture layout, colors and key objects, lit {time_of_day}, {details}, '
   || 'clean solid background, high detail',
   $json$[
     {"name": "look", "label": "Look", "type": "select",
      "options": ["low-poly", "soft clay", "miniature tilt-shift"], "default_value": "soft clay"},
     {"name": "time_of_day", "label": "Lighting", "type": "select",
      "options": ["by bright morning sun", "at golden hour", "at night by warm lamps"],
      "default_value": "at golden hour"},
     {"name": "details", "label": "Extra details", "type": "text",
      "placeholder": "a sleeping cat on the sofa", "max_length": 150}
   ]$json$,
   '1:1', false, true, 30, 1, 1),

  ('5eed0000-0000-4000-8000-000000000004', 'Plush Toy',
   'Your pet or your portrait as a cuddly plush toy.',
   'https://images.kiln.example/templates/plush-toy.webp', '3D Render',
   'Turn the subject of the photo into a soft plush toy about {height_cm} cm tall, made of {fabric}, '
   || 'embroidered eyes and stitched details that keep its likeness, {tag}, '
   || 'sitting on a neutral shelf, gentle window light, macro product shot',
   $json$[
     {"name": "height_cm", "label": "Height (cm)", "type": "slider", "min": 10, "max": 60, "default_value": 25},
     {"name": "fabric", "label": "Fabric", "type": "select",
      "options": ["fluffy minky fabric", "chunky knitted wool", "soft felt"], "default_value": "fluffy minky fabric"},
     {"name": "tag", "label": "Brand tag", "type": "toggle",
      "options": ["", "with a small sewn-on fabric tag"], "default_value": false}
   ]$json$,
   '4:5', false, true, 40, 1, 1),

  -- Photo Editing -----------------------------------------------------------------------------
  ('5eed0000-0000-4000-8000-000000000005', 'Background Swap',
   'Put yourself anywhere: describe the new background.',
   'https://images.kiln.example/templates/background-swap.webp', 'Photo Editing',
   'Replace the background of the photo with {background}, keep the subject exactly as they are '
   || 'with the same face, pose, hair and clothing, {relight}, clean natural edges, photorealistic',
   $json$[
     {"name": "background", "label": "New background", "type": "text",
      "placeholder": "a quiet beach in Santorini at sunset", "max_length": 200, "required": true},
     {"name": "relight", "label": "Match the lighting", "type": "toggle",
      "options": ["keep the original lighting on the subject", "relight the subject to match the new scene"],
      "default_value": true}
   ]$json$,
   '9:16', false, true, 10, 1, 1),

  ('5eed0000-0000-4000-8000-000000000006', 'Photo Restoration',
   'Repair and revive old or damaged photos.',
   'https://images.kiln.example/templates/photo-restoration.webp', 'Photo Editing',
   'Restore this old photograph with {damage} damage: remove scratches, dust, stains and creases, recover faded detail '
   || 'and sharpen faces without changing anyone''s features, {color}, keep the original framing, '
   || 'natural film grain',
   $json$[
     {"name": "damage", "label": "Damage", "type": "select",
      "options": ["light", "moderate", "heavy"], "default_value": "moderate"},
     {"name": "color", "label": "Colorize", "type": "toggle",
      "options": ["keep it black and white with rich tonal range", "colorize it with natural, period-accurate colors"],
      "default_value": true}
   ]$json$,
   'auto', false, true, 20, 1, 1),

  ('5eed0000-0000-4000-8000-000000000007', 'Season Changer',
   'See the same place in another season.',
   'https://images.kiln.example/templates/season-changer.webp', 'Photo Editing',
   'Transform the scene in the photo to {season} {time}, change the foliage, ground, sky and light to match, '
   || 'keep every building, person and object in the same place, {extra}, photorealistic',
   $json$[
     {"name": "season", "label": "Season", "type": "select",
      "options": ["early spring with fresh blossoms", "high summer", "golden autumn", "snowy winter"],
      "required": true},
     {"name": "time", "label": "Time of day", "type": "select",
      "options": ["at the same time of day", "at golden hour", "at blue hour", "at night"],
      "default_value": "at the same time of day"},
     {"name": "extra", "label": "Extra details", "type": "text",
      "placeholder": "light snowfall", "max_length": 120}
   ]$json$,
   '16:9', false, true, 30, 1, 1),

  ('5eed0000-0000-4000-8000-000000000008', 'Object Remover',
   'Erase an unwanted object or person from your photo.',
   'https://images.kiln.example/templates/object-remover.webp', 'Photo Editing',
   'Remove {object} from the photo and fill the area naturally so it blends with the surrounding background, '
   || 'keep everything else exactly unchanged, seamless, photorealistic',
   $json$[
     {"name": "object", "label": "What to remove", "type": "text",
      "placeholder": "the person in the background on the left", "max_length": 150, "required": true}
   ]$json$,
   'auto', false, true, 40, 1, 1),

  -- Portrait ----------------------------------------------------------------------------------
  ('5eed0000-0000-4000-8000-000000000009', 'Professional Headshot',
   'A polished LinkedIn-ready headshot from a casual selfie.',
   'https://images.kiln.example/templates/professional-headshot.webp', 'Portrait',
   'Create a professional corporate headshot of the person in the photo wearing {attire}, '
   || 'in front of a {backdrop}, {smile}, head and shoulders framing, flattering softbox lighting, '
   || 'keep their face, skin tone and hairstyle true to life, 85mm portrait lens',
   $json$[
     {"name": "attire", "label": "Attire", "type": "select",
      "options": ["a navy business suit", "a smart casual blazer", "a crisp white shirt", "a black turtleneck"],
      "default_value": "a navy business suit"},
     {"name": "backdrop", "label": "Backdrop", "type": "select",
      "options": ["soft grey studio backdrop", "blurred modern office", "outdoor greenery bokeh"],
      "default_value": "soft grey studio backdrop"},
     {"name": "smile", "label": "natural, confident smile", "type": "toggle", "default_value": true}
   ]$json$,
   '4:5', false, true, 10, 1, 3),

  ('5eed0000-0000-4000-8000-000000000010', 'Age Machine',
   'See yourself younger or older, from 5 to 90.',
   'https://images.kiln.example/templates/age-machine.webp', 'Portrait',
   'Show the person in the photo at {age} years old, with realistic changes to skin, hair and facial structure '
   || 'for that age, keep their identity clearly recognizable, same pose, clothing and framing, photorealistic',
   $json$[
     {"name": "age", "label": "Age", "type": "slider", "min": 5, "max": 90, "default_value": 70, "required": true}
   ]$json$,
   '4:5', false, true, 20, 1, 1),

  ('5eed0000-0000-4000-8000-000000000011', 'Old Master Portrait',
   'Be painted by a Renaissance or Baroque master.',
   'https://images.kiln.example/templates/old-master-portrait.webp', 'Portrait',
   'Paint a {era} portrait of the person in the photo in the manner of {painter}, {costume}, '
   || 'rich oil glazes and soft directional window light, dark atmospheric background, keep their likeness, {frame}',
   $json$[
     {"name": "painter", "label": "Painter", "type": "select",
      "options": ["Leonardo da Vinci", "Rembrandt", "Johannes Vermeer", "Diego Velázquez"],
      "default_value": "Rembrandt", "required": true},
     {"name": "era", "label": "Era", "type": "select",
      "options": ["Renaissance", "Baroque"], "default_value": "Baroque"},
     {"name": "costume", "label": "Costume", "type": "text",
      "placeholder": "wearing a velvet doublet and a lace collar", "max_length": 150},
     {"name": "frame", "label": "Gilded frame", "type": "toggle",
      "options": ["", "presented in an ornate gilded frame on a museum wall"], "default_value": false}
   ]$json$,
   '3:4', true, true, 30, 1, 1),

  ('5eed0000-0000-4000-8000-000000000012', 'Couple Portrait',
   'Two photos, one portrait: put two people together in a new scene.',
   'https://images.kiln.example/templates/couple-portrait.webp', 'Portrait',
   'Combine the two people from the photos into one natural-looking portrait of them together {setting}, '
   || 'standing close with relaxed, affectionate poses, {outfits}, consistent lighting on both faces, '
   || 'keep each person''s face exactly as in their photo, photorealistic',
   $json$[
     {"name": "setting", "label": "Setting", "type": "select",
      "options": ["at a Parisian street café", "on a beach at sunset", "in a cosy living room at Christmas", "in a wildflower meadow"],
      "default_value": "on a beach at sunset"},
     {"name": "outfits", "label": "Outfits", "type": "text",
      "placeholder": "both wearing matching white linen", "max_length": 150}
   ]$json$,
   '4:5', true, true, 40, 2, 2),

  -- Anime -------------------------------------------------------------------------------------
  ('5eed0000-0000-4000-8000-000000000013', 'Anime Me',
   'Redraw your photo as a hand-painted anime frame.',
   'https://images.kiln.example/templates/anime-me.webp', 'Anime',
   'Redraw the person in the photo as a {look} anime character, keep their hairstyle, clothing and expression, '
   || '{scene}, {mood}, hand-painted look, clean line art',
   $json$[
     {"name": "look", "label": "Look", "type": "select",
      "options": ["whimsical hand-drawn", "90s cel-shaded", "modern shonen", "soft shoujo"],
      "default_value": "whimsical hand-drawn"},
     {"name": "scene", "label": "Keep the background", "type": "toggle",
      "options": ["on a plain pastel background", "redraw the original background in the same anime style"],
      "default_value": true},
     {"name": "mood", "label": "Mood", "type": "text", "placeholder": "a breezy summer afternoon",
      "max_length": 100}
   ]$json$,
   '3:4', false, true, 10, 1, 1),

  ('5eed0000-0000-4000-8000-000000000014', 'Chibi Sticker',
   'A cute chibi sticker of you, ready for chats.',
   'https://images.kiln.example/templates/chibi-sticker.webp', 'Anime',
   'Turn the person in the photo into a cute chibi sticker with a big head and tiny body, looking {expression}, '
   || 'keep their hair and outfit colors, thick white die-cut outline about {outline_px} px wide, '
   || 'flat colors, plain white background',
   $json$[
     {"name": "expression", "label": "Expression", "type": "select",
      "options": ["happy", "laughing", "surprised", "sleepy", "grumpy"], "default_value": "happy"},
     {"name": "outline_px", "label": "Outline width", "type": "slider", "min": 4, "max": 24, "default_value": 12}
   ]$json$,
   '1:1', false, true, 20, 1, 1),

  ('5eed0000-0000-4000-8000-000000000015', 'Anime Squad Poster',
   'Up to four friends as the cast of an anime key visual.',
   'https://images.kiln.example/templates/anime-squad-poster.webp', 'Anime',
   'Turn the people in these photos into the main cast of a {genre} anime key visual poster, '
   || 'each character keeps the face, hair and signature clothing from their photo, dynamic group composition, '
   || '{title_space}, dramatic lighting, highly detailed',
   $json$[
     {"name": "genre", "label": "Genre", "type": "select",
      "options": ["high-fantasy adventure", "sci-fi mecha", "slice-of-life school", "supernatural action"],
      "required": true},
     {"name": "title_space", "label": "Leave room for a title", "type": "toggle",
      "options": ["", "empty space at the top for a title"], "default_value": false}
   ]$json$,
   '2:3', true, true, 30, 1, 4)
on conflict (id) do update set
  name = excluded.name,
  description = excluded.description,
  thumbnail_url = excluded.thumbnail_url,
  category = excluded.category,
  prompt_template = excluded.prompt_template,
  input_fields = excluded.input_fields,
  default_aspect_ratio = excluded.default_aspect_ratio,
  is_premium = excluded.is_premium,
  is_active = excluded.is_active,
  "order" = excluded."order",
  min_images = excluded.min_images,
  max_images = excluded.max_images;
