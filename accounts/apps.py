from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and credits"

    def ready(self) -> None:
        from accounts import adapter, audit  # noqa: F401  (connect the sign-up and login signals)
