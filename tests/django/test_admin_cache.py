"""The cache admin (``CacheEntry``): a read-only list by namespace and two purges (expired
entries, whole namespaces) behind ``delete_cacheentry``, through Django's test client."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from warlock_ai.models import CacheEntry

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:warlock_ai_cacheentry_changelist")
PURGE_EXPIRED = reverse("admin:warlock_ai_cacheentry_purge_expired")
PURGE_NAMESPACE = reverse("admin:warlock_ai_cacheentry_purge_namespace")


def add(namespace, key, expired=None, **fields):
    """An entry that expired an hour ago (``expired=True``), expires in an hour (``False``) or
    never (``None``)."""
    offset = {True: timedelta(hours=-1), False: timedelta(hours=1)}.get(expired)
    expires_at = timezone.now() + offset if offset else None
    return CacheEntry.objects.create(
        namespace=namespace, key=key, expires_at=expires_at, value={"answer": key}, **fields
    )


def keys_left():
    return sorted(CacheEntry.objects.values_list("namespace", "key"))


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def entries():
    add("answers", "a-old", expired=True, scope="user:1", hits=4)
    add("answers", "b-live", expired=False, scope="user:2")
    add("answers", "c-forever")
    add("memory", "m-old", expired=True, scope="agent:billing")
    add("memory", "m-old-2", expired=True)
    add("memory", "m-live", expired=False, embedding=[0.5, 0.25, 0.0])
    add("tools", "t-1")


# --- the list and the detail page -------------------------------------------------------------


def listed(client, query=None):
    response = client.get(CHANGELIST, query or {})
    assert response.status_code == 200
    return [(e.namespace, e.key) for e in response.context["cl"].result_list]


def test_list_orders_by_namespace_and_key_and_marks_expired_entries(admin_client, entries):
    assert listed(admin_client) == sorted(keys_left())
    html = admin_client.get(CHANGELIST).content.decode()
    assert html.count('class="warlock-badge warlock-expired"') == 3
    for header in ("Namespace", "Key", "Scope", "Hits", "Age", "Expires at"):
        assert f">{header}</a>" in html
    assert "never" in html and "user:1" in html


def test_list_shows_each_entrys_age(admin_client):
    add("answers", "week-old", created_at=timezone.now() - timedelta(days=7, hours=3))
    add("answers", "fresh", created_at=timezone.now() - timedelta(minutes=5))
    html = admin_client.get(CHANGELIST).content.decode()
    assert ">1\xa0week</span>" in html and ">5\xa0minutes</span>" in html


def test_list_filters_by_namespace_and_expiry_and_searches_key_and_scope(admin_client, entries):
    assert listed(admin_client, {"namespace": "tools"}) == [("tools", "t-1")]
    expired = [("answers", "a-old"), ("memory", "m-old"), ("memory", "m-old-2")]
    assert listed(admin_client, {"expired": "yes"}) == expired
    assert len(listed(admin_client, {"expired": "no"})) == 4
    assert listed(admin_client, {"q": "b-live"}) == [("answers", "b-live")]
    assert listed(admin_client, {"q": "agent:billing"}) == [("memory", "m-old")]


def test_list_never_reads_embeddings_or_values(admin_client, entries):
    with CaptureQueriesContext(connection) as captured:
        admin_client.get(CHANGELIST)
    selects = [q["sql"] for q in captured if "warlock_ai_cacheentry" in q["sql"]]
    assert selects and not [sql for sql in selects if '"embedding"' in sql or '"value"' in sql]


def test_detail_page_shows_dimensions_and_formatted_value(admin_client, entries):
    entry = CacheEntry.objects.get(key="m-live")
    url = reverse("admin:warlock_ai_cacheentry_change", args=[entry.pk])
    html = admin_client.get(url).content.decode()
    assert "3 dimensions" in html and "0.25" not in html
    assert '<pre class="warlock-json">{\n  &quot;answer&quot;: &quot;m-live&quot;\n}</pre>' in html


def test_no_add_or_change(admin_client, entries):
    entry = CacheEntry.objects.get(key="t-1")
    add_url = reverse("admin:warlock_ai_cacheentry_add")
    assert admin_client.get(add_url).status_code == 403
    url = reverse("admin:warlock_ai_cacheentry_change", args=[entry.pk])
    response = admin_client.post(url, {"namespace": "tools", "key": "t-1", "hits": "99"})
    assert response.status_code == 403
    assert CacheEntry.objects.get(pk=entry.pk).hits == 0
    assert add_url not in admin_client.get(CHANGELIST).content.decode()


# --- purge expired ----------------------------------------------------------------------------


def test_purge_expired_confirms_counts_then_deletes_only_expired_entries(admin_client, entries):
    confirm = admin_client.get(PURGE_EXPIRED)
    assert confirm.status_code == 200
    assert confirm.context["counts"] == [("answers", 1), ("memory", 2)]
    assert "In all: 3 entries." in confirm.content.decode()
    assert len(keys_left()) == 7

    response = admin_client.post(PURGE_EXPIRED, follow=True)
    assert response.redirect_chain[-1][0] == CHANGELIST
    assert messages_of(response) == ["Purged 3 cache entries (namespaces: answers, memory)."]
    assert keys_left() == [
        ("answers", "b-live"),
        ("answers", "c-forever"),
        ("memory", "m-live"),
        ("tools", "t-1"),
    ]
    logged = LogEntry.objects.order_by("object_repr")
    assert [(e.object_repr, e.action_flag, e.user.username) for e in logged] == [
        ("namespace answers: 1 entries", DELETION, "admin"),
        ("namespace memory: 2 entries", DELETION, "admin"),
    ]
    assert logged[1].change_message == "Purged 2 expired entries of namespace “memory”."
    assert logged[1].content_type.model_class() is CacheEntry and logged[1].object_id is None


def test_purge_expired_of_the_filtered_namespace_only(admin_client, entries):
    changelist = admin_client.get(CHANGELIST, {"namespace": "memory"}).content.decode()
    assert f'href="{PURGE_EXPIRED}?namespace=memory"' in changelist
    confirm = admin_client.get(PURGE_EXPIRED, {"namespace": "memory"})
    assert confirm.context["counts"] == [("memory", 2)]
    admin_client.post(PURGE_EXPIRED, {"namespace": "memory"})
    assert ("answers", "a-old") in keys_left()
    assert [k for n, k in keys_left() if n == "memory"] == ["m-live"]
    assert list(LogEntry.objects.values_list("object_repr", flat=True)) == [
        "namespace memory: 2 entries"
    ]


def test_purge_expired_with_nothing_expired_deletes_nothing(admin_client, entries):
    confirm = admin_client.get(PURGE_EXPIRED, {"namespace": "tools"})
    assert "Nothing to purge" in confirm.content.decode()
    response = admin_client.post(PURGE_EXPIRED, {"namespace": "tools"}, follow=True)
    assert messages_of(response) == ["Nothing to purge."]
    assert len(keys_left()) == 7 and not LogEntry.objects.exists()


# --- purge a namespace ------------------------------------------------------------------------


def test_purge_namespace_offers_namespaces_with_counts(admin_client, entries):
    response = admin_client.get(PURGE_NAMESPACE)
    assert response.context["counts"] == [("answers", 3), ("memory", 3), ("tools", 1)]
    assert "memory (3 entries)" in response.content.decode()


def test_purge_namespace_confirms_then_deletes_only_that_namespace(admin_client, entries):
    confirm = admin_client.get(PURGE_NAMESPACE, {"namespace": "answers"})
    assert confirm.context["counts"] == [("answers", 3)]
    assert len(keys_left()) == 7
    response = admin_client.post(PURGE_NAMESPACE, {"namespace": "answers"}, follow=True)
    assert messages_of(response) == ["Purged 3 cache entries (namespaces: answers)."]
    assert {n for n, _key in keys_left()} == {"memory", "tools"}
    entry = LogEntry.objects.get()
    assert entry.object_repr == "namespace answers: 3 entries"
    assert entry.change_message == "Purged 3 entries of namespace “answers”."


# --- list actions: the namespaces of the selected entries -----------------------------------


def test_actions_lead_to_the_confirmation_of_the_selected_namespaces(admin_client, entries):
    pks = list(CacheEntry.objects.filter(key__in=["a-old", "t-1"]).values_list("pk", flat=True))
    query = urlencode([("namespace", "answers"), ("namespace", "tools")])
    for action, url in (
        ("purge_expired_of_selected", PURGE_EXPIRED),
        ("purge_namespaces_of_selected", PURGE_NAMESPACE),
    ):
        response = admin_client.post(CHANGELIST, {"action": action, "_selected_action": pks})
        assert (response.status_code, response.url) == (302, f"{url}?{query}")
    assert len(keys_left()) == 7
    confirm = admin_client.get(f"{PURGE_NAMESPACE}?{query}")
    assert confirm.context["counts"] == [("answers", 3), ("tools", 1)]
    admin_client.post(PURGE_NAMESPACE, {"namespace": ["answers", "tools"]})
    assert {n for n, _key in keys_left()} == {"memory"}
    assert LogEntry.objects.count() == 2


# --- permissions and tampered requests --------------------------------------------------------


def test_view_permission_lists_but_offers_no_purge(staff_client, entries):
    client = staff_client("view_cacheentry")
    html = client.get(CHANGELIST).content.decode()
    assert 'id="purge-expired"' not in html and 'id="purge-namespace"' not in html
    assert "purge_expired_of_selected" not in html and "_selected_action" not in html


def test_purges_need_the_delete_permission(staff_client, entries):
    client = staff_client("view_cacheentry")
    assert client.get(PURGE_EXPIRED).status_code == 403
    assert client.post(PURGE_EXPIRED).status_code == 403
    assert client.get(PURGE_NAMESPACE).status_code == 403
    assert client.post(PURGE_NAMESPACE, {"namespace": "answers"}).status_code == 403
    assert len(keys_left()) == 7 and not LogEntry.objects.exists()


def test_delete_permission_alone_allows_purging(staff_client, entries):
    client = staff_client("view_cacheentry", "delete_cacheentry")
    assert 'id="purge-expired"' in client.get(CHANGELIST).content.decode()
    client.post(PURGE_NAMESPACE, {"namespace": "tools"})
    assert "tools" not in {n for n, _key in keys_left()}
    assert LogEntry.objects.get().user.username == "ops"


def test_unknown_namespaces_are_refused(admin_client, entries):
    for url in (PURGE_EXPIRED, PURGE_NAMESPACE):
        response = admin_client.post(url, {"namespace": ["memory", "nope"]}, follow=True)
        assert messages_of(response) == ["No namespace nope in the cache; nothing was purged."]
    response = admin_client.get(PURGE_NAMESPACE, {"namespace": "nope"}, follow=True)
    assert "nothing was purged" in messages_of(response)[0]
    assert len(keys_left()) == 7 and not LogEntry.objects.exists()


def test_purging_a_namespace_without_naming_one_is_refused(admin_client, entries):
    response = admin_client.post(PURGE_NAMESPACE, follow=True)
    assert messages_of(response) == ["Choose a namespace to purge; nothing was purged."]
    assert len(keys_left()) == 7 and not LogEntry.objects.exists()


def test_malformed_selection_is_refused(admin_client, entries):
    data = {"action": "purge_namespaces_of_selected", "_selected_action": ["x'; --"]}
    response = admin_client.post(CHANGELIST, data, follow=True)
    assert messages_of(response) == ["The selection is not valid; nothing was changed."]
    assert len(keys_left()) == 7


def test_a_post_without_csrf_token_is_refused(admin_user, entries):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(PURGE_EXPIRED).status_code == 403
    assert client.post(PURGE_NAMESPACE, {"namespace": "answers"}).status_code == 403
    assert len(keys_left()) == 7 and not LogEntry.objects.exists()


def test_get_never_purges_and_other_methods_are_refused(admin_client, entries):
    assert admin_client.get(PURGE_EXPIRED, {"post": "yes"}).status_code == 200
    assert admin_client.get(PURGE_NAMESPACE, {"namespace": "answers"}).status_code == 200
    assert admin_client.delete(PURGE_NAMESPACE).status_code == 405
    assert len(keys_left()) == 7 and not LogEntry.objects.exists()
