"""Targets: one resolver for every --target, ``host`` from the CPU's real features, refusals before
any work, and the load-time CPU check that fails closed."""

from __future__ import annotations

import pytest

from tvm_sparse import target as T
from tvm_sparse.runtime import cpu

# /proc/cpuinfo of this project's Intel machine: a Sapphire Rapids-class KVM guest LLVM calls rocketlake
SPR_GUEST = frozenset("""fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr
sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc arch_capabilities rep_good nopl xtopology cpuid
tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes
xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch cpuid_fault invpcid_single ssbd ibrs ibpb stibp
ibrs_enhanced fsgsbase tsc_adjust bmi1 hle avx2 smep bmi2 erms invpcid rtm avx512f avx512dq rdseed adx smap
avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves avx_vnni
avx512_bf16 wbnoinvd arat avx512vbmi umip pku ospke avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni
avx512_bitalg avx512_vpopcntdq la57 rdpid bus_lock_detect cldemote movdiri movdir64b fsrm md_clear
serialize tsxldtrk amx_bf16 avx512_fp16 amx_tile amx_int8 flush_l1d arch_capabilities""".split())


def _cpuinfo_flags(features) -> frozenset[str]:
    """The /proc/cpuinfo flags of a CPU with these LLVM features (Linux's spelling)."""
    return frozenset(cpu.CPUINFO_NAME.get(f, f.replace("-", "_").replace(".", "_")) for f in features)


def test_host_under_kvm_gets_its_real_features():
    mcpu, mattr = T.host_spec(SPR_GUEST, "rocketlake")
    assert mcpu == "sapphirerapids"  # not rocketlake: that has no AMX
    assert "-uintr" in mattr and not any(a.startswith("+") for a in mattr)
    target = T.resolve({"kind": "llvm", "mcpu": mcpu, "mattr": list(mattr)})
    assert {"amx-tile", "amx-int8", "avx512fp16", "avx512vnni"} <= T.isa(target)
    assert cpu.missing(sorted(T.isa(target)), cpu.Host(SPR_GUEST)) == []


def test_host_on_a_zen_guest():
    zen5 = T.isa(T.resolve("znver5"))
    mcpu, mattr = T.host_spec(_cpuinfo_flags(zen5 - {"rdpru"}), "znver5")
    assert (mcpu, mattr) == ("znver5", ("-rdpru",))


def test_host_target_runs_here():
    host = T.resolve("host")
    assert cpu.missing(sorted(T.isa(host))) == []
    assert T.resolve().export() == host.export() and T.resolve(None).export() == host.export()


@pytest.mark.parametrize("spec", ["sapphirerapids", '{"kind": "llvm", "mcpu": "sapphirerapids"}',
                                  {"kind": "llvm", "mcpu": "sapphirerapids", "num-cores": 4}])
def test_every_form_resolves_to_one_target(spec):
    t = T.resolve(spec, num_cores=2)
    assert T.mcpu_of(t) == "sapphirerapids" and int(t.attrs["num-cores"]) == 2
    assert T.resolve(T.to_json(t)).export() == t.export()


@pytest.mark.parametrize("spec, why", [
    ("haswell", "AVX-512 VNNI"), ("sapphirerapidz", "unknown CPU"), ('{"kind": "llvm"', "not valid JSON"),
    ('{"kind": "cuda"}', "only LLVM CPU"), ("[1]", "unknown CPU"),
    ('{"kind": "llvm", "mcpu": "znver4", "num-cores": 0}', "num-cores"),
    ('{"kind": "llvm", "mcpu": "znver4", "num-cores": "two"}', "num-cores"),
])
def test_bad_targets_are_refused_with_a_reason(spec, why):
    with pytest.raises(T.TargetError, match=why):
        T.resolve(spec)


def test_a_zen_library_is_refused_on_an_intel_xeon_and_amx_needs_amx():
    zen = sorted(T.isa(T.resolve("znver4")))
    with pytest.raises(cpu.UnsupportedCPUError, match="sse4a"):  # the insertq that crashed here
        cpu.check(zen, cpu.Host(SPR_GUEST))
    host = T.resolve({"kind": "llvm", "mcpu": "sapphirerapids", "mattr": list(T.host_spec(SPR_GUEST, "rocketlake")[1])})
    no_amx = cpu.Host(SPR_GUEST - {"amx_tile", "amx_int8", "amx_bf16"})
    with pytest.raises(cpu.UnsupportedCPUError, match="amx-bf16, amx-int8, amx-tile"):
        cpu.check(sorted(T.isa(host)), no_amx)
    cpu.check(sorted(T.isa(host)), cpu.Host(SPR_GUEST))


def test_nearest_cpu_stays_in_the_family():
    names = ["znver4", "sapphirerapids"]
    assert T.nearest_cpu(T.resolve("emeraldrapids"), names) == "sapphirerapids"
    assert T.nearest_cpu(T.resolve("znver5"), names) == "znver4"
    assert T.nearest_cpu(T.resolve("znver5"), ["not-a-cpu"]) is None


def test_the_sparse_dense_crossover_is_per_target():
    """Dense Linears run on AMX where the target has it, so sparse must win by more there."""
    from tvm_sparse.graph.policy import AMX_SPARSE_THRESHOLD, SPARSE_THRESHOLD, sparse_threshold

    assert sparse_threshold(T.resolve("sapphirerapids")) == AMX_SPARSE_THRESHOLD > SPARSE_THRESHOLD
    assert sparse_threshold(T.resolve("znver4")) == sparse_threshold(T.resolve("cascadelake")) == SPARSE_THRESHOLD
    # per Linear: only where its dense kernel would run on AMX (16 tokens do not fill a 32-token block)
    spr = T.resolve("sapphirerapids")
    assert sparse_threshold(spr, 128, 768, 3072) == AMX_SPARSE_THRESHOLD
    assert sparse_threshold(spr, 16, 768, 3072) == SPARSE_THRESHOLD


def test_the_policy_sends_an_80_percent_layer_dense_on_amx_only_where_amx_runs_it():
    import numpy as np

    from tvm_sparse.format import bsr4x1
    from tvm_sparse.graph.policy import KernelPolicy

    w = bsr4x1.prune(np.random.default_rng(0).standard_normal((768, 768)).astype(np.float32), 0.8)
    policy = KernelPolicy(T.resolve("sapphirerapids"), mode="threshold")
    assert not policy.by_threshold(w, 128).sparse and policy.by_threshold(w, 16).sparse
    assert KernelPolicy(T.resolve("znver4"), mode="threshold").by_threshold(w, 128).sparse
    assert KernelPolicy(T.resolve("sapphirerapids"), threshold=0.5).by_threshold(w, 128).sparse  # as told
