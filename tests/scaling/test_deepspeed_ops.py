"""DeepSpeed's CPU comm op comes built with the venv (Makefile, DS_BUILD_SHM_COMM=1).

On the CPU, every process that initialises DeepSpeed's comm backend loads its shared-memory
op (deepspeed_shm_comm). PyPI's deepspeed carries no built ops, so without the Makefile's
install step each new venv compiles it with the system compiler at first use, about a
minute on 2 cores, inside whichever test or run comes first. Loading it here with the C++
compiler replaced by `false` and an empty extensions folder fails fast in such a venv
instead of compiling.
"""

from __future__ import annotations


def test_deepspeed_cpu_comm_op_loads_prebuilt_without_a_compiler(tmp_path, monkeypatch):
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is None:
        # DeepSpeed's CUDA accelerator has no such op: nothing is compiled at first use
        assert get_accelerator().device_name() != "cpu"
        return
    monkeypatch.setenv("CXX", "false")  # a JIT build would call it and fail at once
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    try:
        op = builder.load(verbose=False)
    except Exception as err:  # what DeepSpeed raises when the JIT build fails varies
        raise AssertionError(
            f"DeepSpeed's {builder.NAME} op is not built into this venv's deepspeed: it "
            f"would compile at first use. Build it once: make install ({err!r})") from err
    assert hasattr(op, "initialize")  # the op's own entry point, called by the comm backend
    assert not any(tmp_path.iterdir()), "the op was compiled, not loaded prebuilt"
