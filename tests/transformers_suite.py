"""Transformers' own common model tests, fetched at test time.

`ModelTesterMixin` (`tests/test_modeling_common.py`) and `ConfigTester` (`tests/test_configuration_common.py`)
are not in the transformers wheel, only in its source distribution on PyPI. `load_common_tests()` downloads the
sdist of the *installed* transformers version with pip, extracts its `tests/` folder into a cache as the package
`transformers_common_tests`, writes stand-ins for the three modules the sdist lacks, and imports the two
modules. Nothing of transformers' test code is committed to this repository.

Cache: `$MODELING_ITNET_CACHE` or `${XDG_CACHE_HOME:-~/.cache}/modeling_itnet`, then
`transformers-tests/<version>/`. Delete that folder to fetch again. Preparation runs under a file lock and the
extracted folder is moved into place in one rename, so several pytest-xdist workers can start together.

The download goes through pip, so pip's own settings apply: for an offline machine, put the sdist in a folder and
set `PIP_NO_INDEX=1 PIP_FIND_LINKS=<folder>`. When the sdist cannot be had, `TransformersTestsUnavailable` says
why, and the conformance tests fail with that message (they are never skipped).
"""

import importlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import types
import warnings
from pathlib import Path, PurePosixPath

import transformers
from filelock import FileLock

PACKAGE = "transformers_common_tests"
"""Import name given to the sdist's `tests/` folder (not `tests`, which would clash with this repository's)."""

_COMPLETE = "COMPLETE"

# The sdist ships `tests/*.py` only; `test_modeling_common.py` and `test_configuration_common.py` import from
# three sub-packages that are not in it. These stand-ins define just the imported names.
STAND_INS = {
    "generation/test_utils.py": '''
        """Stand-in (written by modeling_itnet's tests/transformers_suite.py; absent from the sdist)."""


        class GenerationTesterMixin:
            """Marker base of testers that also run `generate` tests. `ModelTesterMixin.
            test_generation_tester_mixin_inheritance` requires it exactly of the testers whose classes can generate
            (ITNet's causal-LM tester); the upstream `generate` tests it holds are not part of this run (ITNet's own
            are in tests/test_generation.py)."""
        ''',
    "exporters/test_export.py": '''
        """Stand-in (written by modeling_itnet's tests/transformers_suite.py; absent from the sdist)."""


        class ExportTesterMixin:
            """Base of `ModelTesterMixin`; the `torch.export` tests it holds upstream are not part of this run."""
        ''',
    "utils/test_configuration_utils.py": '''
        """Stand-in (written by modeling_itnet's tests/transformers_suite.py; absent from the sdist)."""

        # Keyword arguments every `PreTrainedConfig` accepts, each set to a value other than its default;
        # `ConfigTester.check_config_arguments_init` checks that a config keeps them all.
        config_common_kwargs = {
            "return_dict": False,
            "output_hidden_states": True,
            "dtype": "float16",
            "chunk_size_feed_forward": 5,
            "architectures": ["SomeModel"],
            "id2label": {0: "label"},
            "label2id": {"label": "0"},
            "problem_type": "regression",
        }
        ''',
}


class TransformersTestsUnavailable(RuntimeError):
    """Transformers' test files could not be obtained."""


def cache_root() -> Path:
    if os.environ.get("MODELING_ITNET_CACHE"):
        base = Path(os.environ["MODELING_ITNET_CACHE"])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modeling_itnet"
    return base / "transformers-tests"


def _download_sdist(version: str, dest: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", f"transformers=={version}",
        "--no-binary", ":all:", "--no-deps", "--disable-pip-version-check", "-d", str(dest),
    ]  # fmt: skip
    try:
        result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TransformersTestsUnavailable(f"`{' '.join(command)}` could not run: {error}") from error
    sdists = sorted(dest.glob("transformers-*.tar.gz"))
    if result.returncode != 0 or not sdists:
        output = (result.stdout + result.stderr).strip()[-3000:]
        raise TransformersTestsUnavailable(
            f"Could not download the transformers {version} source distribution, which holds transformers' common "
            f"model tests (`ModelTesterMixin`, `ConfigTester`). Command:\n    {' '.join(command)}\n"
            f"exit status {result.returncode}; pip said:\n{output}\n"
            "Check network access to PyPI, or point pip at a local copy "
            "(PIP_NO_INDEX=1 PIP_FIND_LINKS=<folder holding the sdist>)."
        )
    return sdists[0]


def _extract_tests(sdist: Path, dest: Path) -> None:
    """Extract `<top>/tests/**` of the sdist into `dest` (regular files only, no path escapes)."""
    count = 0
    with tarfile.open(sdist, "r:gz") as archive:
        for member in archive:
            parts = PurePosixPath(member.name).parts
            if len(parts) < 3 or parts[1] != "tests" or not member.isfile() or ".." in parts:
                continue
            target = dest.joinpath(*parts[2:])
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.extractfile(member) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            count += 1
    if not (dest / "test_modeling_common.py").is_file():
        raise TransformersTestsUnavailable(
            f"{sdist.name} has no tests/test_modeling_common.py ({count} files under tests/)."
        )


def _write_stand_ins(package_dir: Path) -> None:
    for relative, source in STAND_INS.items():
        target = package_dir / relative
        if target.exists():  # a later sdist may ship the real file
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(source).lstrip())
    # Relative imports (`from .generation.test_utils import ...`) need regular packages; `test_configuration_common`
    # also reads `tests/__init__.py` through `direct_transformers_import`.
    for directory in [package_dir, *(p for p in package_dir.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()


def ensure_common_tests(version: str | None = None) -> Path:
    """Make sure `<cache>/<version>/transformers_common_tests` exists; returns `<cache>/<version>`."""
    version = version or transformers.__version__
    root = cache_root() / version
    if (root / _COMPLETE).is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root.parent / f"{version}.lock")):
        if (root / _COMPLETE).is_file():  # another process finished it while we waited
            return root
        with tempfile.TemporaryDirectory(dir=root, prefix=".partial-") as tmp:
            staging = Path(tmp) / PACKAGE
            staging.mkdir()
            sdist = _download_sdist(version, Path(tmp) / "sdist")
            _extract_tests(sdist, staging)
            _write_stand_ins(staging)
            shutil.rmtree(root / PACKAGE, ignore_errors=True)
            os.replace(staging, root / PACKAGE)
        (root / _COMPLETE).write_text(f"transformers {version}: tests/ of {sdist.name}\n")
    return root


def load_common_tests(version: str | None = None) -> types.SimpleNamespace:
    """Import transformers' `test_modeling_common` and `test_configuration_common` from the fetched sdist.

    Returns a namespace with `ModelTesterMixin`, `ConfigTester`, `ids_tensor`, `floats_tensor`,
    `random_attention_mask` and the two modules. Raises `TransformersTestsUnavailable`.
    """
    root = ensure_common_tests(version)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    with warnings.catch_warnings():
        # upstream registers its marks (`accelerate_tests`, `flash_attn_test`, ...) in a conftest.py we do not load
        warnings.filterwarnings("ignore", message=r"Unknown pytest\.mark\.", category=Warning)
        modeling = importlib.import_module(f"{PACKAGE}.test_modeling_common")
        configuration = importlib.import_module(f"{PACKAGE}.test_configuration_common")
    return types.SimpleNamespace(
        test_modeling_common=modeling,
        test_configuration_common=configuration,
        ModelTesterMixin=modeling.ModelTesterMixin,
        ConfigTester=configuration.ConfigTester,
        ids_tensor=modeling.ids_tensor,
        floats_tensor=modeling.floats_tensor,
        random_attention_mask=modeling.random_attention_mask,
    )


def unavailable_mixin(error: Exception) -> type:
    """A stand-in for `ModelTesterMixin` when the common tests could not be fetched: every test of a tester built
    on it fails in `setUp` with `error`'s message, and it adds one test that does the same."""
    message = str(error)

    class CommonTestsUnavailable:
        def setUp(self):
            raise TransformersTestsUnavailable(message)

        def test_transformers_common_tests_available(self):
            raise TransformersTestsUnavailable(message)

    return CommonTestsUnavailable


__all__ = ["TransformersTestsUnavailable", "ensure_common_tests", "load_common_tests", "unavailable_mixin"]
