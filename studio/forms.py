from django import forms

from studio import spec as spec_module
from studio.spec import GenerationSpec, SpecError


def _choices(values: tuple[str, ...], labels: dict[str, str] | None = None) -> list[tuple[str, str]]:
    labels = labels or {}
    return [(value, labels.get(value, value)) for value in values]


RATIO_LABELS = {
    "auto": "Auto (the model picks)",
    "1:1": "1:1 square",
    "16:9": "16:9 wide",
    "9:16": "9:16 tall",
    "3:2": "3:2 photo",
    "2:3": "2:3 portrait",
    "21:9": "21:9 cinema",
}


class ComposerForm(forms.Form):
    prompt = forms.CharField(
        label="Prompt",
        max_length=spec_module.PROMPT_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "Describe the image you want…"}),
    )
    aspect_ratio = forms.ChoiceField(
        label="Aspect ratio", choices=_choices(spec_module.ASPECT_RATIOS, RATIO_LABELS), initial="1:1"
    )
    resolution = forms.ChoiceField(
        label="Resolution", choices=_choices(spec_module.RESOLUTIONS), initial="1K"
    )
    quality = forms.ChoiceField(
        label="Quality", choices=[(q, q.capitalize()) for q in spec_module.QUALITIES], initial="medium"
    )
    n = forms.IntegerField(label="Images", min_value=1, max_value=spec_module.MAX_IMAGES, initial=1)
    output_format = forms.ChoiceField(
        label="Format", choices=[(f, f.upper()) for f in spec_module.OUTPUT_FORMATS], initial="png"
    )
    idempotency_key = forms.CharField(required=False, max_length=100, widget=forms.HiddenInput)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.spec = GenerationSpec.build(
                prompt=cleaned["prompt"],
                aspect_ratio=cleaned["aspect_ratio"],
                resolution=cleaned["resolution"],
                quality=cleaned["quality"],
                n=cleaned["n"],
                output_format=cleaned["output_format"],
            )
        except SpecError as error:
            for name, message in error.errors.items():
                self.add_error(name if name in self.fields else None, message)
        return cleaned
