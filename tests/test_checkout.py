"""The workflow runs this checkout's package even where another copy would be imported."""

import subprocess
import sys
import textwrap

from .conftest import REPO


def test_rule_scripts_import_this_checkout_not_another_installed_copy(tmp_path):
    decoy = tmp_path / "other_clone" / "medtransfer"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("")
    (decoy / "jobs.py").write_text("raise ImportError('the other clone was imported')\n")
    program = textwrap.dedent(f"""
        import importlib.machinery, sys
        class OtherEditableInstall:  # what `pip install -e` of another clone adds
            def find_spec(self, name, path=None, target=None):
                if name == "medtransfer" or name.startswith("medtransfer."):
                    where = path if "." in name else [{str(decoy.parent)!r}]
                    return importlib.machinery.PathFinder.find_spec(name, where)
        sys.meta_path.insert(0, OtherEditableInstall())
        sys.path.insert(0, {str(REPO / "workflow" / "scripts")!r})
        import _checkout
        from medtransfer import jobs
        print(jobs.__file__)
    """)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(REPO / "src" / "medtransfer" / "jobs.py")
