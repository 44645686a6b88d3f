"""The whole dashboard's quality in a real browser: usable from the keyboard alone (with
a visible focus), readable contrast (WCAG 2 ratios from the computed styles) in light
and dark, the dark theme from the system (``prefers-color-scheme``) or the toggle, and
a 400 px wide window with no sideways scrolling and the nav in reach."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.live import LiveServer

from .conftest import ADMIN, SCREENSHOTS, cli, sign_in

#: The views, as the nav names them.
VIEWS = ["Agents", "Messages", "Tasks", "Events"]

#: ``contrast(probes)``: for each probe {name, selector, pseudo?}, the WCAG 2 contrast
#: ratio of the first matching element's colour against the background it is drawn
#: on (the nearest opaque background of it and its ancestors, translucent ones blended
#: in); null when nothing matches.
CONTRAST = """probes => {
  const parse = text => {
    const parts = text.match(/[\\d.]+/g).map(Number);
    return {r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1};
  };
  const over = (top, below) => ({
    r: top.r * top.a + below.r * (1 - top.a),
    g: top.g * top.a + below.g * (1 - top.a),
    b: top.b * top.a + below.b * (1 - top.a),
    a: 1,
  });
  const background = el => {
    if (!el) return {r: 255, g: 255, b: 255, a: 1};
    const own = parse(getComputedStyle(el).backgroundColor);
    if (own.a >= 1) return own;
    const below = background(el.parentElement);
    return own.a > 0 ? over(own, below) : below;
  };
  const luminance = ({r, g, b}) => {
    const [R, G, B] = [r, g, b].map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  const ratios = {};
  for (const {name, selector, pseudo} of probes) {
    const el = document.querySelector(selector);
    if (!el) { ratios[name] = null; continue; }
    const bg = background(el);
    const fg = over(parse(getComputedStyle(el, pseudo || null).color), bg);
    const [hi, lo] = [luminance(fg), luminance(bg)].sort((x, y) => y - x);
    ratios[name] = Math.round(((hi + 0.05) / (lo + 0.05)) * 100) / 100;
  }
  return ratios;
}"""

#: Elements the views do not always show, drawn with the page's own classes.
PROBES_HTML = """
<div id="probes">
  <span class="warn">stuck</span><p class="error">refused</p><button type="button">Save</button>
  <input id="probe-input" value="typed" /><input id="probe-placeholder" placeholder="Search" />
  <div class="grid events row"><span class="kind" data-family="agent">agent.online</span>
    <span class="kind" data-family="message">message.sent</span>
    <span class="kind" data-family="task">task.claimed</span>
    <span class="kind" data-family="pair">pair.invited</span></div>
  <div class="grid events row picked"><span>picked</span></div>
  <div class="panel"><label>Label</label></div>
</div>
"""

#: Text (WCAG AA: 4.5) by name and selector.
TEXT = [
    ("body", "body", None),
    ("muted heading count", "h1 small", None),
    ("table heading", ".grid.head span", None),
    ("header link", ".who a.quiet", None),
    ("nav link", ".top nav a:not([aria-current])", None),
    ("nav current", ".top nav a[aria-current=page]", None),
    ("status text", "[data-testid=status]", None),
    ("quiet button", ".who button.quiet", None),
    ("button", "#probes button", None),
    ("input", "#probe-input", None),
    ("placeholder", "#probe-placeholder", "::placeholder"),
    ("warning", "#probes .warn", None),
    ("error", "#probes .error", None),
    ("agent kind", "#probes .kind[data-family=agent]", None),
    ("message kind", "#probes .kind[data-family=message]", None),
    ("task kind", "#probes .kind[data-family=task]", None),
    ("other kind", "#probes .kind[data-family=pair]", None),
    ("picked row", "#probes .picked span", None),
    ("panel label", "#probes .panel label", None),
    ("notice", ".notice", None),
]
#: Status colours that are not text (the badge's dot: WCAG 1.4.11 asks 3).
SHAPES = [
    ("live dot", "[data-testid=status]", "::before"),
]


def measure(page: Any) -> dict[str, float]:
    """The contrast ratios of :data:`TEXT` and :data:`SHAPES` on ``page`` as it is."""
    probes = [
        {"name": name, "selector": selector, "pseudo": pseudo}
        for name, selector, pseudo in TEXT + SHAPES
    ]
    ratios: dict[str, float] = page.evaluate(CONTRAST, probes)
    assert all(ratio is not None for ratio in ratios.values()), ratios
    return ratios


def theme(page: Any, wanted: str) -> None:
    """Click the header's theme toggle until it says ``wanted`` (auto, light, dark)."""
    for _ in range(3):
        if page.evaluate("document.documentElement.dataset.theme") == wanted:
            return
        page.get_by_role("button", name="Theme:").click()
    assert page.evaluate("document.documentElement.dataset.theme") == wanted


def is_dark(page: Any) -> bool:
    """Whether the page's background is dark (its luminance below a fifth)."""
    return bool(
        page.evaluate(
            """() => {
              const [r, g, b] = getComputedStyle(document.body).backgroundColor
                .match(/[\\d.]+/g).map(Number);
              return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255 < 0.2;
            }"""
        )
    )


def tab_to(page: Any, name: str, *, back: bool = False) -> None:
    """Press Tab (Shift+Tab with ``back``) until the focused element's text is ``name``."""
    for _ in range(30):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == name:
            return
    pytest.fail(f"Tab never reached {name!r}")


def focus_ring(page: Any) -> tuple[str, float]:
    """The focused element's outline style and width (px)."""
    style, width = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, parseFloat(s.outlineWidth)]; }"
    )
    return style, width


def test_the_page_works_from_the_keyboard(page: Any, dashboard: LiveServer) -> None:
    cli(dashboard, "register", "alice")
    page.goto(dashboard.url + "/")
    page.get_by_role("dialog").wait_for()
    assert page.evaluate("document.activeElement.name") == "token"  # the dialog's field
    page.keyboard.type(ADMIN)
    page.keyboard.press("Enter")
    page.get_by_test_id("status").filter(has_text="live").wait_for()
    page.locator("[data-agent='alice']").wait_for()

    tab_to(page, "Events")
    style, width = focus_ring(page)
    assert style != "none" and width >= 2, (style, width)
    page.keyboard.press("Enter")
    page.wait_for_function("relay.view === 'events'")
    assert page.get_by_role("link", name="Events").get_attribute("aria-current") == "page"
    tab_to(page, "Tasks", back=True)
    page.keyboard.press("Enter")
    page.wait_for_function("relay.view === 'tasks'")

    tab_to(page, "Sign out")
    assert focus_ring(page)[0] != "none"
    page.keyboard.press("Enter")
    page.get_by_role("dialog").wait_for()
    page.wait_for_function("document.activeElement.name === 'token'")
    page.keyboard.type(ADMIN)
    page.keyboard.press("Enter")
    page.get_by_test_id("status").filter(has_text="live").wait_for()
    assert page.get_by_test_id("me").inner_text().startswith("admin")


@pytest.mark.parametrize("system", ["light", "dark"])
def test_text_is_readable_in_every_theme(page: Any, dashboard: LiveServer, system: str) -> None:
    page.emulate_media(color_scheme=system)
    cli(dashboard, "register", "alice")
    sign_in(page, dashboard)
    page.locator("[data-agent='alice']").wait_for()
    page.evaluate(
        "html => { document.querySelector('main > section').insertAdjacentHTML('beforeend', html);"
        " relay.notice = 'Something failed'; }",
        PROBES_HTML,
    )
    page.locator(".notice").wait_for()
    failures = {}
    for wanted in ("auto", "light", "dark"):
        theme(page, wanted)
        assert is_dark(page) == (wanted == "dark" or (wanted == "auto" and system == "dark"))
        ratios = measure(page)
        text = {name: ratios[name] for name, _, _ in TEXT if ratios[name] < 4.5}
        shapes = {name: ratios[name] for name, _, _ in SHAPES if ratios[name] < 3}
        if text or shapes:
            failures[wanted] = {**text, **shapes}
    assert not failures, failures


def test_the_system_dark_theme_and_the_toggle(page: Any, dashboard: LiveServer) -> None:
    page.emulate_media(color_scheme="dark")
    cli(dashboard, "register", "reviewer-1", "--tag", "review", "--label", "Reviews PRs")
    cli(dashboard, "register", "builder", "--cap", "build")
    sign_in(page, dashboard)
    page.locator("[data-agent='builder']").wait_for()
    assert page.evaluate("document.documentElement.dataset.theme") == "auto" and is_dark(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-dark.png")
    theme(page, "light")
    assert not is_dark(page)  # the toggle beats the system
    page.reload()  # and is kept
    page.get_by_test_id("status").filter(has_text="live").wait_for()
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    assert not is_dark(page)
    theme(page, "dark")
    assert is_dark(page)
    page.emulate_media(color_scheme="light")
    assert is_dark(page)


def test_a_narrow_window_scrolls_no_view_sideways(page: Any, dashboard: LiveServer) -> None:
    page.set_viewport_size({"width": 400, "height": 800})
    cli(dashboard, "register", "reviewer-1", "--tag", "review", "--label", "Reviews PRs")
    cli(dashboard, "register", "builder-with-a-long-agent-id-0123456789", "--cap", "build")
    cli(
        dashboard,
        "--as",
        "builder-with-a-long-agent-id-0123456789",
        "send",
        "--to",
        "reviewer-1",
        "--claimable",
        "--subject",
        "Review the long branch name feature/abcdefghijklmnop",
        "please",
    )
    sign_in(page, dashboard)
    page.locator("[data-agent='reviewer-1']").wait_for()
    for view in VIEWS:
        link = page.get_by_role("link", name=view, exact=True)
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 400, (view, box)
        link.click()
        page.wait_for_function(f"relay.view === '{view.lower()}'")
        page.locator("main > section:visible").wait_for()
        widths = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
            " document.body.scrollWidth, document.body.clientWidth]"
        )
        assert widths[0] <= widths[1] and widths[2] <= widths[3], (view, widths)
    # The events view's rows keep id, kind and summary; an event's JSON wraps.
    page.get_by_role("button", name="Event 4, message.sent").click()
    page.get_by_test_id("event-json").wait_for()
    assert page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    page.get_by_role("link", name="Agents", exact=True).click()
    page.wait_for_function("relay.view === 'agents'")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-narrow.png")
