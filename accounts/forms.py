from typing import Any, cast

from allauth.account.forms import LoginForm as AllauthLoginForm
from django import forms

from accounts.models import Role, User, Workspace


class WorkspaceForm(forms.Form):
    name = forms.CharField(
        label="Name", max_length=100, widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off"})
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the workspace a name.")
        return name


class InvitationForm(forms.Form):
    email = forms.EmailField(label="Email", widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    role = forms.ChoiceField(
        label="Role",
        choices=Role.choices,
        initial=Role.EDITOR,
        help_text="Editors generate; viewers only look; owners also manage members.",
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)


class CreditAdjustmentForm(forms.Form):
    amount = forms.IntegerField(
        label="Credits",
        help_text="Positive to grant, negative to deduct.",
        min_value=-10_000_000,
        max_value=10_000_000,
    )
    reason = forms.CharField(label="Reason", max_length=300, help_text="Kept in the ledger with your name.")

    def clean_amount(self) -> int:
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("Enter a number of credits other than zero.")
        return amount

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why the balance changes.")
        return reason


class ApiKeyForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, help_text="What uses this key, e.g. “batch script”.")
    workspace = forms.ModelChoiceField(
        label="Workspace",
        queryset=Workspace.objects.none(),
        empty_label=None,
        help_text="Images made with the key land in this workspace's gallery; your credits pay for them.",
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["workspace"]).queryset = Workspace.objects.filter(
            memberships__user=user, memberships__role__in=[Role.OWNER, Role.EDITOR]
        ).order_by("-is_personal", "name")


class LoginForm(AllauthLoginForm):
    """allauth's login form, its first field named for what it takes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["login"].label = "Username or email"
