"""Import every module of megatron.core and print a JSON report {"ok": [...], "failed": {module: reason}}.

Run with whichever framework is on the path: the converted workspace (mindtorch) or the PyTorch
reference; the tests compare the two.
"""
import importlib
import json
import pathlib
import traceback
import warnings

warnings.simplefilter("ignore")
import megatron.core as mc  # noqa: E402

root = pathlib.Path(mc.__file__).parent
names = []
for path in sorted(root.rglob("*.py")):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    names.append(".".join(["megatron", "core", *parts]))
ok, failed = [], {}
for name in names:
    try:
        importlib.import_module(name)
        ok.append(name)
    except BaseException as exc:  # noqa: BLE001 - a module that fails to import is the result
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        failed[name] = f"{type(exc).__name__}: {str(exc)[:200]} ({pathlib.Path(frame.filename).name}:{frame.lineno})"
print("IMPORT_REPORT " + json.dumps({"ok": ok, "failed": failed}))
