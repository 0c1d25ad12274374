from django import forms

from studio import spec as spec_module
from studio.models import Project
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
    # Open projects of the current workspace; none chosen means the default project.
    project = forms.ModelChoiceField(
        label="Project", queryset=Project.objects.none(), required=False, empty_label=None
    )
    idempotency_key = forms.CharField(required=False, max_length=100, widget=forms.HiddenInput)

    def __init__(self, *args, workspace=None, **kwargs):
        super().__init__(*args, **kwargs)
        if workspace is not None:
            default = Project.default_for(workspace)
            self.fields["project"].queryset = Project.objects.filter(
                workspace=workspace, archived_at__isnull=True
            )
            self.fields["project"].initial = default.pk
        else:
            del self.fields["project"]

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


class ProjectForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, widget=forms.TextInput(attrs={"autofocus": True}))

    def __init__(self, *args, workspace, project: Project | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.project = project
        if project is not None:
            self.fields["name"].initial = project.name

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the project a name.")
        others = Project.objects.filter(workspace=self.workspace, name__iexact=name)
        if self.project is not None:
            others = others.exclude(pk=self.project.pk)
        if others.exists():
            raise forms.ValidationError("This workspace has a project with that name.")
        return name
