"""Search over prompts (Generation.objects.matching): PostgreSQL's full-text search on its GIN index, any
language; substrings on SQLite. The same answers on both, but for what only the index can tell."""

import pytest
from django.db import connection

from studio.models import Generation
from tests.helpers import finished_generation, personal_membership

POSTGRES = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's full-text search only")


@pytest.fixture
def prompts(alice):
    membership = personal_membership(alice)
    made = {}
    for name, prompt in {
        "harbour": "A misty harbour with a LIGHTHOUSE at dawn",
        "fox": "a red fox in deep snow",
        "russian": "старый маяк на скале",
        "chinese": "海边的灯塔,黄昏",
        "greek": "ένας φάρος στη θάλασσα",
        "punctuated": "fox-trot, rock'n'roll & blues!",
    }.items():
        generation, _ = finished_generation(membership, prompt=prompt)
        made[name] = generation
    made["fox"].revised_prompt = "an arctic fox curled up in powder snow"
    made["fox"].save(update_fields=["revised_prompt"])
    return made


def found(words: list[str]) -> set[str]:
    return {generation.prompt for generation in Generation.objects.matching(words)}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["lighthouse"], {"harbour"}),
        (["light"], {"harbour"}),  # a word's beginning finds it
        (["MISTY", "harbour"], {"harbour"}),  # every word, any case
        (["misty", "fox"], set()),
        (["powder"], {"fox"}),  # the revised prompt counts too
        (["fox"], {"fox", "punctuated"}),
        (["маяк"], {"russian"}),
        (["灯塔"], {"chinese"}),  # written without spaces: a substring
        (["φάρος"], {"greek"}),
        (["rock'n'roll"], {"punctuated"}),
        (["fox", "&", "blues"], {"punctuated"}),  # an operator among words changes nothing
        (["&", "|", "!(", ":*"], {"harbour", "fox", "russian", "chinese", "greek", "punctuated"}),  # no words
        ([], {"harbour", "fox", "russian", "chinese", "greek", "punctuated"}),
    ],
)
def test_every_word_matches_in_any_language(prompts, words, expected):
    assert found(words) == {prompts[name].prompt for name in expected}


@POSTGRES
@pytest.mark.django_db
def test_the_search_uses_its_gin_index(prompts):
    query = Generation.objects.matching(["lighthouse"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: make the planner show its options
        plan = query.explain()
    assert "generation_prompt_search" in plan, plan


@POSTGRES
@pytest.mark.django_db
def test_the_history_ranks_better_matches_first(client, alice):
    import re

    membership = personal_membership(alice)
    finished_generation(membership, prompt="a lighthouse, another lighthouse, and a third lighthouse")
    finished_generation(membership, prompt="a quiet bay with one small lighthouse among many other things")
    client.force_login(alice)
    html = client.get("/history/?q=lighthouse").content.decode()
    shown = re.findall(r'<p class="history-prompt">([^<]*)</p>', html)
    # The older prompt says it three times: it comes first, though the other is newer.
    assert shown[0].startswith("a lighthouse, another") and len(shown) == 2
