"""What the composer tells a person beside its fields: the ratios' names and uses, and prompt presets."""

RATIO_LABELS = {
    "auto": "Auto (the model picks)",
    "1:1": "1:1 square",
    "16:9": "16:9 wide",
    "9:16": "9:16 tall",
    "3:2": "3:2 photo",
    "2:3": "2:3 portrait",
    "4:3": "4:3 classic",
    "3:4": "3:4 portrait",
    "5:4": "5:4 print",
    "4:5": "4:5 feed portrait",
    "21:9": "21:9 cinema",
}

# What each shape is for, shown beside the ratio picker (after the image services' own advice).
RATIO_GUIDANCE = {
    "auto": "Auto lets the model pick the shape from your prompt. 1K only: 2K and 4K need a ratio.",
    "1:1": "Square: social posts, avatars, icons and product shots.",
    "16:9": "Wide: banners, video thumbnails, slides and desktop wallpapers.",
    "9:16": "Tall: stories, reels, shorts and phone wallpapers.",
    "3:2": "Classic photo landscape: prints, blog headers, scenery.",
    "2:3": "Photo portrait: posters, book covers, pins.",
    "4:3": "Classic screen: presentations, tablets, illustrations.",
    "3:4": "Portrait: product pages, magazine pages, prints.",
    "5:4": "Near square landscape: framed prints and art.",
    "4:5": "Portrait feed posts: the tallest shape most feeds show uncropped.",
    "21:9": "Cinematic: ultra-wide scenes, website heroes, film stills.",
}

# Prompt helpers: a button per preset appends its phrase to the prompt. Phrases follow the image services'
# prompting advice: name the medium or style, the light, the mood and the framing in plain words.
PROMPT_PRESETS = (
    (
        "Style",
        (
            ("Photorealistic", "photorealistic photograph, natural detail and textures"),
            ("Watercolor", "soft watercolor painting on textured paper"),
            ("3D render", "3D render, soft global illumination, clean materials"),
            ("Flat illustration", "flat vector illustration, clean shapes, limited palette"),
            ("Oil painting", "oil painting with visible brushstrokes"),
        ),
    ),
    (
        "Lighting",
        (
            ("Golden hour", "warm golden-hour light, long soft shadows"),
            ("Studio softbox", "studio softbox lighting, even and diffused"),
            ("Neon", "neon lighting, vivid magenta and cyan glow"),
            ("Overcast", "soft overcast daylight"),
        ),
    ),
    (
        "Mood",
        (
            ("Serene", "serene, calm mood"),
            ("Dramatic", "dramatic, high-contrast mood"),
            ("Playful", "playful, cheerful mood"),
        ),
    ),
    (
        "Camera",
        (
            ("Close-up", "close-up shot"),
            ("Wide angle", "wide-angle shot"),
            ("35mm film", "shot on 35mm film, subtle grain"),
            ("Overhead", "top-down overhead view"),
        ),
    ),
)
