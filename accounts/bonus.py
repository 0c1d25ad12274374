"""The sign-up bonus: SIGNUP_BONUS_CREDITS, once per verified email address and once per user.

An address is normalised before it is counted, so one mailbox cannot collect the bonus under many spellings:
lower case, a `+tag` dropped, and for Gmail (and googlemail.com) the dots of the local part too. With
mandatory email verification (production) the bonus comes when an address is confirmed; without it
(development), at sign-up.
"""

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts import ledger
from accounts.models import EntryKind, SignupBonus, User

DOTLESS_DOMAINS = {"gmail.com", "googlemail.com"}


def normalised(email: str) -> str:
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in DOTLESS_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def grant_signup_bonus(user: User, email: str) -> bool:
    """Give the bonus for `email` to `user`, unless this address or this user has had it. True if given."""
    amount = settings.SIGNUP_BONUS_CREDITS
    if amount <= 0 or not email:
        return False
    try:
        with transaction.atomic():
            SignupBonus.objects.create(email=normalised(email), user=user, credits=amount)
            ledger.adjust(user=user, amount=amount, kind=EntryKind.BONUS, reason="Welcome to Studio")
    except IntegrityError:
        return False  # this address, or this user, already had it
    return True
