from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and credits"

    def ready(self) -> None:
        from accounts import audit  # noqa: F401  (connects the login signals)
