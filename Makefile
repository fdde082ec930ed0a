# Set-up and the two commands of the README quick start.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.normlab-installed
LLAMA := $(VENV)/.llama-cpp-built
# llama.cpp built for the CPU it runs on (GGML_NATIVE) segfaults on some of our VMs
# (AVX-512/AMX); this portable AVX2 build works everywhere we run. --no-cache-dir keeps pip
# from reusing a wheel it once built with other flags. normlab runs text models only, so the
# multimodal library (LLAVA_BUILD) is left out: the build takes about half the time.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(LLAMA): | $(BIN)/python
	@echo "building llama-cpp-python (a few minutes, once)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet --no-cache-dir "llama-cpp-python==0.3.36"
	touch $(LLAMA)

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml $(LLAMA)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/normlab run scenarios/quickstart.yaml

test: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/models.py
	$(BIN)/python benchmarks/grading.py --quick

clean:
	rm -rf $(VENV) build *.egg-info
