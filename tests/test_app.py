"""The app's pages render without exceptions (streamlit.testing AppTest)."""

from streamlit.testing.v1 import AppTest

from conftest import ROOT


def test_home_page_renders_and_switches_dataset():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.metric[0].value == "12,101"  # Beauty items
    at.selectbox[0].select("ml-100k").run()
    assert not at.exception
    assert at.metric[0].value == "1,682"
