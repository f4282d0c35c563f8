"""The cache admin in Chromium: list entries by namespace, purge expired entries and a
namespace through their confirmation pages; a view-only user can purge nothing."""

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from warlock_ai.models import CacheEntry

LIST = "/admin/warlock_ai/cacheentry/"
PURGE_EXPIRED = "/admin/warlock_ai/cacheentry/purge-expired/"
PURGE_NAMESPACE = "/admin/warlock_ai/cacheentry/purge-namespace/"


def add(namespace, key, expires_in_hours=None, age_hours=0, **fields):
    now = timezone.now()
    expires = None if expires_in_hours is None else now + timedelta(hours=expires_in_hours)
    created = now - timedelta(hours=age_hours)
    CacheEntry.objects.create(
        namespace=namespace, key=key, expires_at=expires, created_at=created, **fields
    )


def add_entries():
    add("answers", "refund-policy", 6, 18, scope="tenant:acme", hits=12, value={"text": "30 days"})
    add("answers", "shipping-times", -2, 26, scope="tenant:acme", hits=3, embedding=[0.1, 0.2])
    add("answers", "opening-hours", None, 24 * 9, scope="tenant:globex", hits=40)
    add("memory", "agent:billing/facts", -30, 54, scope="user:1042", value=["prefers email"])
    add("memory", "agent:billing/summary", 48, 0.2, scope="user:1042", hits=1)
    add("memory", "agent:triage/summary", -1, 3, scope="user:77")
    add("tools", "weather:paris", 1, 0.5, hits=5, value={"temp_c": 14})


def keys_left():
    return sorted(CacheEntry.objects.values_list("namespace", "key"))


def namespaces_left():
    return sorted(set(CacheEntry.objects.values_list("namespace", flat=True)))


def confirm_counts(page):
    """The confirmation page's (namespace, entries to delete) rows, once it has loaded."""
    page.wait_for_selector("#purge-counts")
    rows = page.locator("#purge-counts tbody tr").all_inner_texts()
    return [tuple(row.split("\t")) for row in rows]


def test_operator_purges_expired_entries_of_a_namespace(page, staff_user, login, screenshot):
    add_entries()
    login(staff_user("ops", "view_cacheentry", "delete_cacheentry"))
    page.goto(LIST)
    expect(page.locator("#result_list tbody tr")).to_have_count(7)
    expect(page.locator("#result_list .warlock-expired")).to_have_count(3)
    screenshot(page, "cache-list")

    page.click("#changelist-filter a:text-is('memory')")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    page.click("#purge-expired")
    assert confirm_counts(page) == [("memory", "2")]
    assert len(keys_left()) == 7
    page.click("input[type=submit][value='Yes, purge']")
    page.wait_for_selector(".messagelist")
    assert (
        "Purged 2 cache entries (namespaces: memory)." in page.locator(".messagelist").inner_text()
    )
    assert ("answers", "shipping-times") in keys_left()
    assert [key for ns, key in keys_left() if ns == "memory"] == ["agent:billing/summary"]


def test_entry_page_shows_value_and_embedding_size(page, staff_user, login, screenshot):
    add_entries()
    login(staff_user("viewer", "view_cacheentry"))
    page.goto(LIST)
    page.click("text=shipping-times")
    assert page.locator(".field-embedding_size .readonly").inner_text() == "2 dimensions"
    add("answers", "x", value={"reply": "Colis livré en 48 h", "sources": ["faq/12"]})
    page.goto(LIST + "?q=x&namespace=answers")
    page.click("#result_list a:text-is('x')")
    value = page.locator(".field-formatted_value pre.warlock-json").inner_text()
    assert value == '{\n  "reply": "Colis livré en 48 h",\n  "sources": [\n    "faq/12"\n  ]\n}'
    assert page.locator("input[type=submit]").count() == 0  # read only
    screenshot(page, "cache-entry")


def test_operator_purges_a_namespace_chosen_from_a_list(page, staff_user, login):
    add_entries()
    login(staff_user("ops", "view_cacheentry", "delete_cacheentry"))
    page.goto(LIST)
    page.click("#purge-namespace")
    page.wait_for_selector("#id_namespace")
    options = page.locator("#id_namespace option").all_inner_texts()
    assert options == ["answers (3 entries)", "memory (3 entries)", "tools (1 entry)"]
    page.select_option("#id_namespace", "answers")
    page.click("input[type=submit][value='Review']")
    assert confirm_counts(page) == [("answers", "3")]
    page.click("input[type=submit][value='Yes, purge']")
    page.wait_for_selector(".messagelist")
    assert namespaces_left() == ["memory", "tools"]


def test_operator_purges_namespaces_of_selected_entries(page, staff_user, login):
    add_entries()
    login(staff_user("ops", "view_cacheentry", "delete_cacheentry"))
    page.goto(LIST)
    page.locator("#result_list tbody tr", has_text="weather:paris").locator("input").check()
    page.select_option("select[name=action]", "purge_namespaces_of_selected")
    page.click("button[name=index]")
    assert confirm_counts(page) == [("tools", "1")]
    page.click("input[type=submit][value='Yes, purge']")
    page.wait_for_selector(".messagelist")
    assert namespaces_left() == ["answers", "memory"]


def test_view_only_user_sees_no_purge_and_a_forced_post_is_refused(
    page, staff_user, login, live_server
):
    add_entries()
    login(staff_user("viewer", "view_cacheentry"))
    page.goto(LIST)
    expect(page.locator("#result_list tbody tr")).to_have_count(7)
    expect(page.locator("#purge-expired, #purge-namespace")).to_have_count(0)
    expect(page.locator("select[name=action]")).to_have_count(0)

    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    for url, form in ((PURGE_EXPIRED, {}), (PURGE_NAMESPACE, {"namespace": "memory"})):
        response = page.request.post(
            f"{live_server.url}{url}", form={**form, "csrfmiddlewaretoken": token}
        )
        assert response.status == 403
    assert len(keys_left()) == 7
