"""Checks inside the FINN build that stop it early (custom steps of build.py; no FINN import at module level).

* step_bnn_check_cppsim, right after step_apply_folding_config (where FINN runs FOLDED_HLS_CPPSIM): every
  MVAU output and the label of the saved cppsim context against the golden model (compare.compare_spec,
  array_equal). FINN's own verify_step only prints FAIL; a mismatch here stops the build before IP
  generation, synthesis and place and route.
* step_bnn_check_rtlsim, right after step_create_stitched_ip (STITCHED_IP_RTLSIM): the stitched IP's
  predicted classes against the golden labels (only the design's outputs exist in a stitched-IP rtlsim).
* step_bnn_vivado_reports, right after step_synthesize_bitfile: Vivado's routed timing summary and placed
  utilization report copied into OUT/finn/report and checked (vivado_reports.py): negative slack or
  over-utilization stops the build.

The golden outputs come from the .npz the CLI writes (compare.save_golden), named to build.py by --golden,
which binds it to these steps (``golden``: its path, or None for no check). Each check writes its result (JSON, temp file + rename) into FINN's output folder, where the CLI reads it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .compare import compare_labels, compare_spec, format_report, load_golden
from .vivado_reports import format_summary, summarize


class VerificationMismatch(RuntimeError):
    """A FINN verification step's outputs differ from the golden model's."""


class TimingOrFitError(RuntimeError):
    """Vivado's reports show negative slack or over-utilization."""


def write_json(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def _verifies(cfg, name: str) -> bool:
    return any(getattr(v, "name", str(v)) == name for v in (cfg.verify_steps or []))


def step_bnn_check_cppsim(model, cfg, golden: str | None = None):
    if not _verifies(cfg, "FOLDED_HLS_CPPSIM") or not golden:
        return model
    spec = load_golden(golden)
    rep = compare_spec(cfg.output_dir, "folded_hls_cppsim", spec)
    write_json(rep, Path(cfg.output_dir) / "compare_cppsim.json")
    print(format_report(rep))
    if not (rep["all_layers_equal"] and rep["all_labels_equal"]):
        raise VerificationMismatch(f"cppsim outputs differ from the golden model: see {cfg.output_dir}/compare_cppsim.json "
                                   "(build stopped after step_apply_folding_config)")
    return model


def step_bnn_check_rtlsim(model, cfg, golden: str | None = None):
    if not _verifies(cfg, "STITCHED_IP_RTLSIM") or not golden:
        return model
    spec = load_golden(golden)
    rep = compare_labels(cfg.output_dir, "stitched_ip_rtlsim", spec["label"])
    write_json(rep, Path(cfg.output_dir) / "compare_rtlsim.json")
    print(format_report(rep))
    if not rep["all_labels_equal"]:
        raise VerificationMismatch(f"stitched-IP rtlsim labels differ from the golden model: see "
                                   f"{cfg.output_dir}/compare_rtlsim.json (build stopped after step_create_stitched_ip)")
    return model


def vivado_impl_reports(model, shell: str) -> tuple[Path, Path]:
    """(routed timing summary, placed utilization) of FINN's Vivado/Vitis implementation run."""
    if shell == "vivado_zynq":
        impl = Path(model.get_metadata_prop("vivado_pynq_proj") or "", "finn_zynq_link.runs", "impl_1")
        return impl / "top_wrapper_timing_summary_routed.rpt", impl / "top_wrapper_utilization_placed.rpt"
    link = Path(model.get_metadata_prop("vitis_link_proj") or "")
    timing = sorted(link.glob("_x/link/vivado/vpl/prj/prj.runs/impl_1/*timing_summary_routed.rpt"))
    util = sorted(link.glob("_x/link/vivado/vpl/prj/prj.runs/impl_1/*utilization_placed.rpt"))
    if not timing or not util:
        raise FileNotFoundError(f"{link}: no routed timing summary / placed utilization report under "
                                "_x/link/vivado/vpl/prj/prj.runs/impl_1")
    return timing[-1], util[-1]


def step_bnn_vivado_reports(model, cfg):
    shell = getattr(cfg.shell_flow_type, "value", str(cfg.shell_flow_type)).lower()
    report = Path(cfg.output_dir) / "report"
    report.mkdir(parents=True, exist_ok=True)
    timing, util = vivado_impl_reports(model, shell)
    shutil.copyfile(timing, report / "post_route_timing.rpt")
    shutil.copyfile(util, report / "post_place_utilization.rpt")
    s = summarize(report / "post_route_timing.rpt", report / "post_place_utilization.rpt")
    write_json(s, report / "timing_fit.json")
    print(format_summary(s))
    if s["problems"]:
        raise TimingOrFitError("; ".join(s["problems"]) + f" (see {report}/timing_fit.json)")
    return model
