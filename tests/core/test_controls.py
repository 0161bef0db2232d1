"""The controls table: URL <-> state, validation, and agreement with the core."""
import html
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_lab import controls, images, schedules


def valid(state: dict, view: str) -> bool:
    for control in controls.controls_for(view):
        value = state[control.name]
        if control.kind == "choice":
            if value not in control.choices:
                return False
        elif control.kind == "code":
            if not isinstance(value, str) or not controls.fits_in_url(control, value):
                return False
        elif not (control.low <= value <= control.high) or (control.kind == "int" and not isinstance(value, int)):
            return False
    if view == "forward":
        return state["t"] <= state["steps"]
    if state["sampler"] == "ddim":
        return state["step"] <= state["ddim_steps"] <= state["steps"] and state["size"] % 16 == 0
    return state["step"] <= state["steps"] and state["size"] % 16 == 0  # DDIM steps: not in use


CODE_SAMPLES = ("def betas(T):\n    return np.full(T, 0.01)\n", "# ∑ β ≤ 1 — ünïcode\r\n\tpass\n", " ", "\x00")


def states(view: str):
    """Any valid state of a view."""
    fields = {}
    for control in controls.controls_for(view):
        if control.kind == "choice":
            fields[control.name] = st.sampled_from(control.choices)
        elif control.kind == "code":
            fields[control.name] = st.one_of(st.just(""), st.sampled_from(CODE_SAMPLES),
                                             st.text(st.characters(exclude_categories=("Cs",)), max_size=300))
        elif control.kind == "int":
            fields[control.name] = st.integers(int(control.low), int(control.high))
        else:
            fields[control.name] = st.floats(control.low, control.high, allow_nan=False)
    def fix(state):
        controls.constrain(state)
        return state
    return st.fixed_dictionaries(fields).map(fix)


def test_choices_match_the_core():
    assert controls.IMAGE_CHOICES == images.IMAGE_NAMES
    assert controls.SCHEDULE_CHOICES == schedules.SCHEDULE_NAMES


@pytest.mark.parametrize("view", controls.VIEWS)
def test_defaults_are_valid_and_make_an_empty_query(view):
    state = controls.defaults(view)
    assert valid(state, view)
    assert controls.to_query(state, view) == ""
    assert controls.parse_query("", view) == (state, [])


@pytest.mark.parametrize("view", controls.VIEWS)
@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_state_to_url_to_state_is_the_identity(view, data):
    state = data.draw(states(view))
    assert valid(state, view)
    query = controls.to_query(state, view)
    parsed, notices = controls.parse_query(query, view)
    assert parsed == state and notices == []


@pytest.mark.parametrize("view, to_view", [("forward", "reverse"), ("reverse", "forward")])
@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_a_link_to_the_other_view_carries_the_settings_both_have_but_the_code(view, to_view, data):
    state = data.draw(states(view))
    parsed, notices = controls.parse_query(controls.carried_query(state, view, to_view), to_view)
    assert notices == []
    shared = {"image", "size", "schedule", "steps", "seed"}
    assert {name: parsed[name] for name in shared} == {name: state[name] for name in shared}
    others = controls.defaults(to_view)  # the code ("hook") too: each view has its own editor
    assert {name: value for name, value in parsed.items() if name not in shared} == \
        {name: value for name, value in others.items() if name not in shared}


@pytest.mark.parametrize("view", controls.VIEWS)
@given(query=st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_any_string_yields_a_valid_state(view, query):
    state, notices = controls.parse_query(query, view)
    assert valid(state, view)
    assert all(isinstance(notice, str) and len(notice) < 200 for notice in notices)


names = st.sampled_from([c.name for c in controls.CONTROLS] + ["bogus", "embed", "<b>"])
junk = st.one_of(st.text(max_size=30), st.sampled_from(["nan", "NaN", "inf", "-inf", "1e308", "1e999", "-1",
                                                         "3.5", "0x10", " 12 ", "", "<script>alert(1)</script>"]),
                 st.integers(-10**30, 10**30).map(str), st.floats().map(str))


@pytest.mark.parametrize("view", controls.VIEWS)
@given(pairs=st.lists(st.tuples(names, junk), max_size=12))
@settings(max_examples=400, deadline=None)
def test_any_parameters_yield_a_valid_state(view, pairs):
    state, notices = controls.parse_query(urlencode(pairs), view)
    assert valid(state, view)


def test_bad_values_are_replaced_with_a_notice_naming_them():
    state, notices = controls.parse_query("t=nan&steps=5000&schedule=bogus&seed=-4&colour=red", "forward")
    assert state["t"] == 0 and state["steps"] == 1000 and state["schedule"] == "linear" and state["seed"] == 0
    text = " ".join(notices)
    for name in ("Timestep", "Steps T", "Schedule", "Seed", "colour"):
        assert name in text


def test_duplicated_names_keep_the_last_value_and_dependent_limits_hold():
    state, notices = controls.parse_query("t=10&t=700&steps=300", "forward")
    assert state["steps"] == 300 and state["t"] == 300
    assert "Timestep: given more than once, using the last (“700”)" in notices
    state, _ = controls.parse_query("sampler=ddim&ddim_steps=900&steps=100&step=99", "reverse")
    assert state["ddim_steps"] == 100 and state["step"] == 99
    # The value left unused is not judged: no "“abc” is not valid, using 0" while t = 5 is in use.
    state, notices = controls.parse_query("t=abc&t=5", "forward")
    assert state["t"] == 5 and notices == ["Timestep: given more than once, using the last (“5”)"]


def test_each_adjustment_says_why():
    state, notices = controls.parse_query("size=100&sampler=ddim&steps=20", "reverse")
    assert state["size"] == 96 and state["ddim_steps"] == 20
    assert sorted(notices) == ["DDIM steps: adjusted to 20 to fit the other settings",
                               "Size (pixels): rounded to 96, a multiple of 16"]
    state, notices = controls.parse_query("denoiser=trained", "reverse")  # the network needs no Training set
    assert state["dataset"] == "shapes" and notices == []


def test_each_notice_knows_its_setting_and_a_lowered_setting_remembers_the_links_value():
    wanted = {}
    state, notices = controls.parse_query("seed=abc&sampler=ddim&ddim_steps=50&steps=20&step=80&colour=red",
                                          "reverse", wanted=wanted)
    assert {notice.about: notice for notice in notices} == {
        "seed": "Seed: “abc” is not valid, using 0", "": "ignored unknown setting “colour”",
        "ddim_steps": "DDIM steps: adjusted to 20 to fit the other settings",
        "step": "Timestep: adjusted to step 20 of 20 (t = 0, the end of the chain) to fit the other settings"}
    assert state["ddim_steps"] == 20 and wanted["ddim_steps"] == 50  # what the link chose, for when it fits
    assert state["step"] == wanted["step"] == 20  # a time slider stays where it landed
    state["steps"] = wanted["steps"] = 1000
    assert controls.constrain(state, wanted) == ["ddim_steps"] and state["ddim_steps"] == 50


def test_ddpm_leaves_the_ddim_steps_alone_until_ddim_is_chosen():
    state, notices = controls.parse_query("steps=2", "reverse")
    assert notices == [] and state["ddim_steps"] == 50
    assert controls.to_query(state, "reverse") == "steps=2"
    state["sampler"] = "ddim"
    assert controls.constrain(state, {"ddim_steps": 50}) == ["ddim_steps"] and state["ddim_steps"] == 2


def test_the_reverse_views_step_is_told_as_a_place_in_the_chain():
    # Its slider counts steps from x_T: "using 1000" would read as t = 1000, where the page shows t = 0.
    state, notices = controls.parse_query("step=5000&steps=100", "reverse")
    assert state["step"] == 100
    assert notices == ["Timestep: 5000 is out of range, using step 100 of 100 (t = 0, the end of the chain)"]
    state, notices = controls.parse_query("step=-3", "reverse")
    assert notices == ["Timestep: -3 is out of range, using step 0 of 1000 (t = 1000, pure noise)"]
    # DDIM's first t depends on its spacing (951 for 20 leading steps): not said, rather than said wrong.
    state, notices = controls.parse_query("step=-3&sampler=ddim&ddim_steps=20", "reverse")
    assert notices == ["Timestep: -3 is out of range, using step 0 of 20 (pure noise)"]
    state, notices = controls.parse_query("step=80&sampler=ddim&ddim_steps=50", "reverse")
    assert notices == ["Timestep: adjusted to step 50 of 50 (t = 0, the end of the chain) to fit the other settings"]
    state = controls.defaults("reverse") | {"step": 30}
    assert controls.adjusted_notice("step", state) == "Timestep: adjusted to step 30 of 1000 to fit the other settings"
    _, notices = controls.parse_query("t=5000", "forward")  # the forward view's slider is t itself
    assert notices == ["Timestep: 5000 is out of range, using 1000"]
    _, notices = controls.parse_query("t=2000&steps=10", "forward")  # one notice, with where t ends up
    assert notices == ["Timestep: 2000 is out of range, using 10"]


def test_a_bad_choice_is_replaced_by_the_default_as_its_menu_names_it():
    _, notices = controls.parse_query("schedule=quadratic&seed=x", "forward")
    assert notices == ["Schedule: “quadratic” is not valid, using Linear (DDPM)", "Seed: “x” is not valid, using 0"]


def test_a_setting_of_the_other_view_is_named_as_such():
    _, notices = controls.parse_query("t=5&colour=red", "reverse")
    assert notices == ["ignored “t”, a setting of the forward view, not this one", "ignored unknown setting “colour”"]


def test_a_setting_lowered_to_fit_another_goes_back_to_the_students_choice():
    state = controls.defaults("reverse") | {"sampler": "ddim", "ddim_steps": 50}
    wanted = {"ddim_steps": 50}
    state["steps"] = 20
    assert controls.constrain(state, wanted) == ["ddim_steps"] and state["ddim_steps"] == 20
    state["steps"] = 30
    assert controls.constrain(state, wanted) == ["ddim_steps"] and state["ddim_steps"] == 30
    state["steps"] = 1000
    assert controls.constrain(state, wanted) == ["ddim_steps"] and state["ddim_steps"] == 50
    assert controls.constrain(state, wanted) == []
    state["steps"] = 20
    controls.constrain(state)  # without the student's choices a lowered value stays
    state["steps"] = 1000
    assert controls.constrain(state) == [] and state["ddim_steps"] == 20


def test_a_ddim_steps_lowered_earlier_goes_back_up_under_ddpm_too():
    # DDIM 50, Steps T 20 (DDIM steps 20), then DDPM and Steps T 1000: the address kept ddim_steps=20 while the
    # tab would choose 50 with DDIM again, so a copied link differed from the tab (QA25 F3).
    state = controls.defaults("reverse") | {"sampler": "ddim", "ddim_steps": 50, "steps": 20}
    wanted = {"ddim_steps": 50}
    assert controls.constrain(state, wanted) == ["ddim_steps"] and state["ddim_steps"] == 20
    state["sampler"] = "ddpm"
    state["steps"] = 10
    assert controls.constrain(state, wanted) == [] and state["ddim_steps"] == 20  # DDPM lowers nothing
    state["steps"] = 1000
    assert controls.constrain(state, wanted) == ["ddim_steps"] and state["ddim_steps"] == 50
    assert controls.to_query(state, "reverse") == ""  # every setting at its default again


def test_injection_is_echoed_short_and_as_text():
    state, notices = controls.parse_query("schedule=<img src=x onerror=alert(1)>" + "A" * 500, "forward")
    assert state["schedule"] == "linear"
    assert all(len(notice) < 120 for notice in notices)


def test_presentation_flags_survive_the_url_but_are_not_state():
    state, notices = controls.parse_query("embed=1&hide=image,process&lock=t&t=5", "forward")
    assert notices == [] and state["t"] == 5
    query = controls.to_query(state, "forward", keep_flags_from="?embed=1&hide=image,process&lock=t&t=5&x=1")
    assert query == "t=5&embed=1&hide=image,process&lock=t"  # a list stays as the teacher wrote it


@pytest.mark.parametrize("view", controls.VIEWS)
def test_the_form_has_one_labelled_field_per_control(view):
    form = controls.form_html(view, escape=html.escape)
    in_form = [control for control in controls.controls_for(view) if control.group in controls.GROUPS]
    for control in in_form:
        assert f'<label for="{control.name}">{html.escape(control.label)}</label>' in form
        assert f'id="{control.name}"' in form
    assert form.count("<fieldset") == len({c.group for c in in_form})
    assert {c.kind for c in controls.controls_for(view) if c not in in_form} <= {"code"}  # the code panel's


def test_code_travels_as_base64url_and_bad_or_long_code_is_refused():
    source = "def betas(T):\n    return np.full(T, 0.01)  # β = 0.01\n"
    query = controls.to_query({**controls.defaults("forward"), "hook": source}, "forward")
    assert query.startswith("hook=") and "%" not in query  # URL-safe as it is
    assert controls.parse_query(query, "forward") == ({**controls.defaults("forward"), "hook": source}, [])
    for raw in ("not base64!", "A", "_w"):  # "_w" is byte 0xff: not UTF-8
        state, notices = controls.parse_query(f"hook={raw}", "reverse")
        assert state["hook"] == "" and notices == [f"Code of betas(T): “{controls._short(raw)}” is not valid, "
                                                   "using the original"]
    long_code = controls.code_to_url(source + "# a comment a teacher added\n" * 60)  # valid, but past the limit
    state, notices = controls.parse_query(f"hook={long_code}", "forward")
    assert state["hook"] == "" and notices == [f"Code of betas(T): too long for a link ({len(long_code)} characters; "
                                               "a link holds 2000), using the original"]
    hook = controls.BY_NAME["hook"]
    assert controls.fits_in_url(hook, "x" * 1500) and not controls.fits_in_url(hook, "x" * 1501)


def test_code_too_long_for_a_link_comes_back_only_where_the_tab_kept_it():
    source = "def betas(T):\n    return np.full(T, 0.01)\n" + "# a long comment\n" * 150
    key = controls.tab_key(source)
    query = controls.to_query({**controls.defaults("forward"), "hook": source, "t": 3}, "forward")
    assert query == f"t=3&hook={key}" and len(query) < 40

    kept = {key: source}
    assert controls.parse_query(query, "forward", kept_code=kept.get) == (
        {**controls.defaults("forward"), "hook": source, "t": 3}, [])
    for kept_code in (lambda key: None, {key: source + "# not the same code\n"}.get):  # another tab; a stale copy
        state, notices = controls.parse_query(query, "forward", kept_code=kept_code)
        assert state == {**controls.defaults("forward"), "t": 3}
        assert notices == ["Code of betas(T): this link names code that was too long for a link and stays in the "
                           "browser tab where it was run, using the original"]
    state, notices = controls.parse_query("hook=tab.not-a-key", "forward", kept_code=kept.get)
    assert state["hook"] == "" and "is not valid" in notices[0]


def test_minus_zero_is_zero_in_the_box_and_the_address():
    # eta=-0 showed "-0.0" in its box (QA25).
    state, notices = controls.parse_query("sampler=ddim&eta=-0", "reverse")
    assert notices == [] and controls._show(state["eta"]) == "0.0"
    assert controls.to_query(state, "reverse") == "sampler=ddim"
