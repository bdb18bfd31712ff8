"""The MLflow UI in a real browser (``make test-ui``; not part of ``make test``).

A warm-up sweep on the micro model (S in {0, 1} x seeds 0, 1, K = 8) is logged to a fresh store, the UI
is started on it as ``make mlflow-ui`` starts it, and headless Chromium checks what a researcher
looks for: the runs table lists the named runs under their sweep's parent run, ``eval/test/avg_at_8``
can be shown as a column with the logged values, the Models column links each job's final policy, and the
compare view of two runs loads. Screenshots
are saved in ``outputs/ui-screenshots/``.

Needs Debian's ``chromium`` and ``chromium-driver`` (or $CHROME_BINARY / $CHROMEDRIVER) and selenium
(the ``ui`` extra); without them every test is skipped, saying what is missing.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow_server import MlflowServer  # tests/mlflow_server.py (tests/conftest.py puts tests/ on sys.path)

ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / "outputs" / "ui-screenshots"
METRIC = "eval/test/avg_at_8"

if os.environ.get("PRERL_UI_TESTS") != "1":
    pytest.skip("browser tests run with `make test-ui` (PRERL_UI_TESTS=1)", allow_module_level=True)
selenium = pytest.importorskip("selenium", reason="selenium is missing: pip install -e '.[ui]'")
CHROME = os.environ.get("CHROME_BINARY") or shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
if not (CHROME and DRIVER):
    pytest.skip(
        "no headless browser: apt-get install chromium chromium-driver (or set CHROME_BINARY and CHROMEDRIVER)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory, cache_dir):
    """A warm-up sweep logged by the real trainer: 4 jobs nested under one parent run."""
    folder = tmp_path_factory.mktemp("ui-store")
    cmd = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        "+sweep=warmup",
        "experiment=smoke",
        "warmup_steps=0,1",
        "seed=0,1",
        "total_steps=2",
        "eval.samples_per_prompt=8",
        f"cache_dir={cache_dir}",
        f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
        f"hydra.sweep.dir={folder / 'multirun'}",
    ]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=1200, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("prerl-smoke")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r is not parent]
    return folder, experiment.experiment_id, parent, children


@pytest.fixture(scope="module")
def ui(store):
    server = MlflowServer(store[0], ui_only=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1900,1000",
    ):
        options.add_argument(arg)
    options.binary_location = CHROME
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    yield driver
    driver.quit()


def shot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def wait_for(driver, condition, what: str, timeout: float = 60):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(lambda d: condition(d))
    except Exception as err:
        shot(driver, "failure")
        raise AssertionError(f"{what} did not appear in {timeout} s (screenshot: {SHOTS / 'failure.png'})") from err


def row_texts(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.ag-center-cols-container .ag-row, .ag-pinned-left-cols-container"
        " .ag-row')).map(r => r.innerText)"
    )


def close_assistant(driver) -> None:
    for button in driver.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
        if button.is_displayed():
            button.click()


def open_runs(driver, ui, experiment_id):
    # MLflow 3.17 keeps the GenAI / Model training switch in the browser, not in the experiment's
    # kind tag: the link of docs/mlflow.md (and this one) asks for the model-training pages.
    driver.get(f"{ui.uri}/#/experiments/{experiment_id}?workflowType=machine_learning")
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".ag-row"), "the runs table")
    close_assistant(driver)


def unfold(driver, parent, children) -> None:
    """Unfold the sweep's parent row into its jobs' rows, unless the UI kept it unfolded (it remembers
    which rows were, in the browser, with the rows as they first draw)."""
    names = sorted(c.info.run_name for c in children)

    def shown(d) -> bool:
        return all(any(n[:12] in t for t in row_texts(d)) for n in names)

    if not shown(driver):
        driver.find_element(
            By.CSS_SELECTOR, f".ag-row[row-id='{parent.info.run_id}'] [col-id='attributes.`Run Name`'] button"
        ).click()
    wait_for(driver, shown, "the sweep's jobs")


def test_runs_table_groups_a_sweep_under_its_parent_and_shows_the_metric(browser, ui, store):
    folder, experiment_id, parent, children = store
    open_runs(browser, ui, experiment_id)
    assert "/runs" in browser.current_url
    wait_for(browser, lambda d: any(parent.info.run_name in t for t in row_texts(d)), "the parent run")
    texts = row_texts(browser)
    assert not any(child.info.run_name in t for child in children for t in texts)  # grouped: folded away
    shot(browser, "1-runs-table-folded")

    unfold(browser, parent, children)
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "mini/train" in text and "train.py" in text  # Dataset and Source columns filled

    [b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Columns"][0].click()
    search = wait_for(
        browser,
        lambda d: [
            i for i in d.find_elements(By.CSS_SELECTOR, "input[placeholder='Search columns']") if i.is_displayed()
        ],
        "the column picker",
    )[0]
    search.send_keys(METRIC)
    exact = f"//strong[normalize-space(.)='{METRIC}'][normalize-space(..)='{METRIC}']"  # not best/{METRIC}
    item = wait_for(
        browser,
        lambda d: [e for e in d.find_elements(By.XPATH, exact) if e.is_displayed()],
        f"{METRIC} in the column picker",
    )[0]
    item.click()
    search.send_keys(Keys.ESCAPE)
    header = wait_for(
        browser,
        lambda d: [
            h
            for h in d.find_elements(By.CSS_SELECTOR, ".ag-header-cell[col-id]")
            if h.get_attribute("col-id") == f"metrics.`{METRIC}`"
        ],
        f"a {METRIC} column",
    )[0]
    assert METRIC in header.text.replace("\n", "")
    col_id = header.get_attribute("col-id")
    for child in children:  # each job's row shows its logged value
        cell = browser.find_element(By.CSS_SELECTOR, f".ag-row[row-id='{child.info.run_id}'] [col-id='{col_id}']")
        assert float(cell.text) == pytest.approx(child.data.metrics[METRIC], abs=5e-3)
    shot(browser, "2-runs-table-sweep-expanded-with-metric")


def test_models_column_links_each_jobs_policy(browser, ui, store):
    """Each job's final policy is a model of its run (prerl/tracking/policy_model.py): the Models column names it
    and links the model's page."""
    folder, experiment_id, parent, children = store
    open_runs(browser, ui, experiment_id)
    wait_for(browser, lambda d: any(parent.info.run_name in t for t in row_texts(d)), "the parent run")
    unfold(browser, parent, children)
    column = "attributes.`Models`"
    wait_for(
        browser,
        lambda d: [
            h
            for h in d.find_elements(By.CSS_SELECTOR, ".ag-header-cell[col-id]")
            if h.get_attribute("col-id") == column
        ],
        "the Models column",
    )
    for child in children:
        cell = f".ag-row[row-id='{child.info.run_id}'] [col-id='{column}']"
        link = wait_for(
            browser,
            lambda d, cell=cell: [
                a for a in d.find_elements(By.CSS_SELECTOR, f"{cell} a") if a.text.strip() == "policy"
            ],
            f"policy in the Models cell of {child.info.run_name}",
        )[0]
        (output,) = child.outputs.model_outputs
        assert link.get_attribute("href").endswith(f"/experiments/{experiment_id}/models/{output.model_id}")
    shot(browser, "3-runs-table-models-column")


def test_compare_view_of_two_runs_loads(browser, ui, store):
    folder, experiment_id, parent, children = store
    a, b = children[:2]
    runs, experiments = json.dumps([a.info.run_id, b.info.run_id]), json.dumps([experiment_id])
    browser.get(f"{ui.uri}/#/compare-runs?runs={runs}&experiments={experiments}&workflowType=machine_learning")
    wait_for(
        browser,
        lambda d: (
            a.info.run_name in d.find_element(By.TAG_NAME, "body").text
            and b.info.run_name in d.find_element(By.TAG_NAME, "body").text
        ),
        "both run names",
    )
    wait_for(browser, lambda d: METRIC in d.find_element(By.TAG_NAME, "body").text, f"{METRIC} in the comparison")
    time.sleep(2)  # let the plots draw before the screenshot
    close_assistant(browser)
    shot(browser, "4-compare-two-runs")
