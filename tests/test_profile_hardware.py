"""Hardware profiles: every GPU the issue names loads, every figure has a source, clear errors."""
from __future__ import annotations

import json

import pytest
import yaml

from designer.layout import REPO_ROOT, LayoutError
from designer.profile.hardware import HARDWARE_DIR, HardwareError, hardware_from_dict, hardware_names, load_hardware

REQUIRED = ["h100-sxm", "h200", "a100-80gb", "a10", "l40s", "rtx-4090", "rtx-5090", "b200"]
FIGURES = ["memory_bytes", "memory_bandwidth_bytes_per_s", "peak_flops_per_s", "interconnect_bandwidth_bytes_per_s",
           "interconnect_latency_s", "efficiency"]


def test_all_required_profiles_exist():
    assert set(REQUIRED) <= set(hardware_names())


@pytest.mark.parametrize("name", REQUIRED)
def test_profile_loads_with_a_source_for_every_figure(name):
    hw = load_hardware(name)
    assert hw.memory_bytes > 16 * 2 ** 30 and hw.memory_bandwidth_bytes_per_s > 5e11
    assert hw.peak("bf16") > 1e14
    assert set(FIGURES) <= set(hw.sources), f"{name}: figures without a source"
    assert 0 < hw.efficiency.gemm <= 1 and 0 < hw.efficiency.memory <= 1


def test_h100_figures():
    hw = load_hardware("h100-sxm")
    assert hw.memory_bytes == 81559 * 2 ** 20                  # nvidia-smi total, measured on the lent H100
    assert hw.memory_bandwidth_bytes_per_s == 3.35e12
    assert hw.peak("bf16") == 989.4e12 and hw.peak("fp8") == 1978.9e12



def test_h100_efficiency_is_the_committed_calibration():
    measured = json.loads((REPO_ROOT / "bench" / "results" / "gpu_calibration_h100.json").read_text())["efficiency"]
    eff = load_hardware("h100-sxm").efficiency
    assert eff.calibrated
    for key in ("gemm", "gemm_fp8", "attention", "memory", "decode_gemm_memory", "attention_decode_memory"):
        assert getattr(eff, key) == pytest.approx(measured[key], abs=5e-4), key
    assert eff.kernel_overhead_s == pytest.approx(measured["kernel_overhead_s"], rel=0.01)
    assert eff.gemm_for("fp8") == eff.gemm_fp8 and eff.gemm_for("bf16") == eff.gemm


def test_precision_fallback():
    assert load_hardware("h100-sxm").compute_precision("fp4") == "fp8"
    assert load_hardware("a100-80gb").compute_precision("fp8") == "bf16"
    assert load_hardware("b200").compute_precision("fp4") == "fp4"


def test_unknown_name_suggests_the_closest():
    with pytest.raises(HardwareError, match=r"did you mean 'h100-sxm'"):
        load_hardware("h100")
    with pytest.raises(LayoutError, match="known: a10"):
        load_hardware("tpu-v5")


def test_malformed_profile_is_rejected():
    data = yaml.safe_load((HARDWARE_DIR / "h100-sxm.yaml").read_text())
    with pytest.raises(HardwareError, match="memory_bandwith"):
        hardware_from_dict({**data, "memory_bandwith": 1})
    with pytest.raises(HardwareError, match="efficiency.gemm"):
        hardware_from_dict({**data, "efficiency": {"gemm": 1.5}})
    with pytest.raises(HardwareError, match="positive number"):
        hardware_from_dict({**data, "memory_bytes": -1})
