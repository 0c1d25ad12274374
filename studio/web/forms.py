import uuid
from functools import cached_property
from typing import Any, cast

from django import forms
from django.core.files.uploadedfile import UploadedFile

from accounts.models import Workspace
from studio.engine import images as image_files
from studio.engine import spec as spec_module
from studio.engine.images import CheckedImage, ImageProblem, check_image, check_mask
from studio.engine.services import SubmittedImage
from studio.engine.spec import GenerationSpec, SpecError
from studio.models import Image, Project
from studio.web.composer_guide import RATIO_GUIDANCE, RATIO_LABELS


def _choices(values: tuple[str, ...], labels: dict[str, str] | None = None) -> list[tuple[str, str]]:
    labels = labels or {}
    return [(value, labels.get(value, value)) for value in values]


IMAGE_ACCEPT = "image/png,image/jpeg,image/webp"


def ratio_sizes() -> dict[str, dict[str, str]]:
    """The pixel size of every ratio at every tier, for the guidance beside the ratio picker."""
    return {
        ratio: {tier: "{}x{}".format(*spec_module.size_for(ratio, tier)) for tier in spec_module.RESOLUTIONS}
        for ratio in spec_module.ASPECT_RATIOS
        if ratio != "auto"
    }


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    """Several uploaded files under one name; each is checked in the form (by content, not by name)."""

    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        uploads = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(MultipleImageField, self).clean(upload, initial) for upload in uploads]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _checked_upload(upload: UploadedFile) -> CheckedImage:
    """An uploaded image checked by its content; the size limit is read before the file is."""
    if (upload.size or 0) > image_files.MAX_INPUT_BYTES:
        raise ImageProblem(f"The image is larger than {image_files.MAX_INPUT_BYTES // (1024 * 1024)} MB.")
    upload.seek(0)
    return check_image(upload.read(), max_bytes=image_files.MAX_INPUT_BYTES)


def _checked_gallery_image(image: Image) -> CheckedImage:
    with image.file.open("rb") as handle:
        return check_image(handle.read(), max_bytes=image_files.MAX_INPUT_BYTES)


class ComposerForm(forms.Form):
    prompt = forms.CharField(
        label="Prompt",
        max_length=spec_module.PROMPT_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "Describe the image you want…"}),
    )
    aspect_ratio = forms.ChoiceField(
        label="Aspect ratio",
        choices=_choices(spec_module.ASPECT_RATIOS, RATIO_LABELS),
        initial="1:1",
        widget=forms.Select(attrs={"aria-describedby": "ratio-guidance"}),
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
    # Input images. The first image of the request is the mask's source when there is one (an upload or a
    # gallery image), then the uploaded references, then the references picked from the gallery.
    references = MultipleImageField(
        label="Reference images",
        required=False,
        widget=MultipleFileInput(attrs={"multiple": True, "accept": IMAGE_ACCEPT}),
    )
    gallery_references = forms.Field(required=False, widget=forms.MultipleHiddenInput)
    source_image = forms.FileField(
        label="Source image", required=False, widget=forms.FileInput(attrs={"accept": IMAGE_ACCEPT})
    )
    source_gallery_image = forms.CharField(required=False, widget=forms.HiddenInput)
    # Painted in the browser: a PNG the source's size, transparent where the image is to change.
    mask = forms.FileField(
        label="Mask", required=False, widget=forms.FileInput(attrs={"accept": "image/png"})
    )
    idempotency_key = forms.CharField(required=False, max_length=100, widget=forms.HiddenInput)

    def __init__(self, *args: Any, workspace: Workspace | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.spec: GenerationSpec | None = None
        # The checked input images (references, the mask's source first) and the mask, once valid.
        self.inputs: list[SubmittedImage] = []
        self.mask_input: SubmittedImage | None = None
        if workspace is not None:
            default = Project.default_for(workspace)
            cast(forms.ModelChoiceField, self.fields["project"]).queryset = Project.objects.filter(
                workspace=workspace, archived_at__isnull=True
            )
            self.fields["project"].initial = default.pk
        else:
            del self.fields["project"]

    @property
    def ratio_guidance(self) -> str:
        """What the chosen ratio is for, and its size at the chosen tier (composer.js says the same)."""
        ratio, tier = self["aspect_ratio"].value(), self["resolution"].value()
        text = RATIO_GUIDANCE.get(ratio, "")
        if ratio == "auto" and tier != "1K":
            return f"{text} Pick a ratio for {tier}."
        if size := ratio_sizes().get(ratio, {}).get(tier):
            return f"{text} {tier}: {size} px."
        return text

    # Gallery images named by id: only those of the current workspace are ever found.

    def _workspace_images(self, ids: list[str]) -> dict[str, Image]:
        wanted = [uuid.UUID(value) for value in ids if _is_uuid(value)]
        if self.workspace is None or not wanted:
            return {}
        found = Image.objects.filter(workspace=self.workspace, pk__in=wanted).select_related("generation")
        return {str(image.pk): image for image in found}

    def _named_ids(self, name: str) -> list[str]:
        if self.is_bound:
            values = self.data.getlist(name) if hasattr(self.data, "getlist") else self.data.get(name, [])
        else:
            values = self.initial.get(name, [])
        if isinstance(values, str):
            values = [values]
        return [str(uuid.UUID(value)) if _is_uuid(value) else str(value).strip() for value in values if value]

    @cached_property
    def shown_references(self) -> list[Image]:
        """Gallery references to show as picked (from the submitted form, or from `?reference=`)."""
        ids = self._named_ids("gallery_references")
        found = self._workspace_images(ids)
        return [found[value] for value in ids if value in found]

    @cached_property
    def shown_source(self) -> Image | None:
        """The gallery image the mask is painted on (from the submitted form, or from `?edit=`)."""
        ids = self._named_ids("source_gallery_image")
        return self._workspace_images(ids[:1]).get(ids[0]) if ids else None

    @property
    def unavailable_initial_images(self) -> bool:
        """True when a link asked for a gallery image that is not in this workspace."""
        if self.is_bound:
            return False
        wanted = self._named_ids("gallery_references") + self._named_ids("source_gallery_image")
        return len(wanted) > len(self.shown_references) + (self.shown_source is not None)

    def clean_references(self) -> list[CheckedImage]:
        checked, problems = [], []
        for upload in self.cleaned_data.get("references") or []:
            try:
                checked.append(_checked_upload(upload))
            except ImageProblem as problem:
                problems.append(f"{upload.name}: {problem}")
        if problems:
            raise forms.ValidationError(problems)
        return checked

    def clean_gallery_references(self) -> list[Image]:
        ids = self._named_ids("gallery_references")
        found = self._workspace_images(ids)
        missing = len([value for value in ids if value not in found])
        if missing:
            raise forms.ValidationError(
                "A picked image is not in this workspace's gallery (deleted, or from another workspace)."
                if missing == 1
                else f"{missing} picked images are not in this workspace's gallery "
                "(deleted, or from another workspace).",
                code="not_in_workspace",
            )
        return [found[value] for value in ids]

    def clean_source_gallery_image(self) -> Image | None:
        ids = self._named_ids("source_gallery_image")
        if not ids:
            return None
        image = self._workspace_images(ids[:1]).get(ids[0])
        if image is None:
            raise forms.ValidationError(
                "The source image is not in this workspace's gallery (deleted, or from another workspace).",
                code="not_in_workspace",
            )
        return image

    def clean_source_image(self) -> CheckedImage | None:
        upload = self.cleaned_data.get("source_image")
        if not upload:
            return None
        try:
            return _checked_upload(upload)
        except ImageProblem as problem:
            raise forms.ValidationError(f"{upload.name}: {problem}") from problem

    def clean_mask(self) -> CheckedImage | None:
        upload = self.cleaned_data.get("mask")
        if not upload:
            return None
        try:
            return _checked_upload(upload)
        except ImageProblem as problem:
            raise forms.ValidationError(f"The mask: {problem}") from problem

    def _input_count(self) -> int:
        """How many input images were sent, counted before any is read, so the limit holds whatever else
        is wrong."""
        has_source = bool(self.files.get("source_image") or self._named_ids("source_gallery_image"))
        return (
            int(has_source)
            + len(self.files.getlist("references"))
            + len(self._named_ids("gallery_references"))
        )

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        count = self._input_count()
        if count > spec_module.MAX_INPUT_IMAGES:
            self.add_error(
                "references",
                f"Up to {spec_module.MAX_INPUT_IMAGES} images in all, the mask's source included: "
                f"this has {count}. Remove {count - spec_module.MAX_INPUT_IMAGES}.",
            )
        if cleaned.get("source_image") and cleaned.get("source_gallery_image"):
            self.add_error("source_image", "Choose one source image: an upload or a gallery image, not both.")
        if self.errors:
            return cleaned
        inputs = self._collect_inputs(cleaned)
        if inputs is None:
            return cleaned
        mask = cleaned.get("mask")
        if mask is not None:
            if not inputs:
                self.add_error("mask", "A mask needs an image to edit: choose a source image.")
                return cleaned
            source = inputs[0].image
            assert source is not None  # the page's inputs are checked images, never URLs
            try:
                check_mask(mask, source)
            except ImageProblem as problem:
                self.add_error("mask", str(problem))
                return cleaned
        try:
            self.spec = GenerationSpec.build(
                prompt=cleaned["prompt"],
                aspect_ratio=cleaned["aspect_ratio"],
                resolution=cleaned["resolution"],
                quality=cleaned["quality"],
                n=cleaned["n"],
                output_format=cleaned["output_format"],
                input_images=len(inputs),
                has_mask=mask is not None,
            )
        except SpecError as error:
            for name, message in error.errors.items():
                self.add_error(name if name in self.fields else None, message)
            return cleaned
        self.inputs = inputs
        self.mask_input = SubmittedImage(image=mask) if mask is not None else None
        return cleaned

    def _collect_inputs(self, cleaned: dict[str, Any]) -> list[SubmittedImage] | None:
        """The input images in request order, the mask's source first; None after adding an error."""
        inputs: list[SubmittedImage] = []
        if source := cleaned.get("source_gallery_image"):
            try:
                inputs.append(SubmittedImage(image=_checked_gallery_image(source), source_image=source))
            except (ImageProblem, OSError):
                self.add_error("source_gallery_image", "The source image can no longer be read.")
                return None
        elif cleaned.get("source_image"):
            inputs.append(SubmittedImage(image=cleaned["source_image"]))
        inputs += [SubmittedImage(image=checked) for checked in cleaned.get("references") or []]
        for image in cleaned.get("gallery_references") or []:
            try:
                inputs.append(SubmittedImage(image=_checked_gallery_image(image), source_image=image))
            except (ImageProblem, OSError):
                self.add_error("gallery_references", "A picked image can no longer be read.")
                return None
        return inputs


class ProjectForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, widget=forms.TextInput(attrs={"autofocus": True}))

    def __init__(
        self, *args: Any, workspace: Workspace, project: Project | None = None, **kwargs: Any
    ) -> None:
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
