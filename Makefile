# nightshift: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
CARGO  ?= cargo

.PHONY: demo test bench setup build lint template sam-build clean

## setup: install what the sandbox and the template check need (moto, cfn-lint)
setup:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r sandbox/requirements.txt

## build: every function binary (debug), which the tests and the demo drive
build:
	$(CARGO) build --workspace --bins

## demo: seed a local AWS, run each function through the Lambda Runtime API, show before and after
demo: setup build
	$(CARGO) run --quiet -p nightshift-tests --bin demo

## test: unit tests, integration tests against a local AWS, the IAM proof (every request the
##       functions sent is allowed by their own policy in the template), and the template checks
IAM_REQUESTS ?= $(CURDIR)/target/iam-requests
test: setup build
	rm -rf $(IAM_REQUESTS)
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		NIGHTSHIFT_REQUEST_LOG=$(IAM_REQUESTS) $(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		NIGHTSHIFT_REQUEST_LOG=$(IAM_REQUESTS) $(CARGO) test --workspace --no-fail-fast; \
	fi
	$(PYTHON) tests/iam/prove.py $(IAM_REQUESTS)
	$(MAKE) --no-print-directory template

## bench: release binaries measured against a local AWS over TLS, beside a bare lambda_runtime floor and
##        a boto3 peer, with the arm64 binaries as `sam build` (cargo-lambda) makes them; a table, the
##        targets held or missed, and target/bench.json (not run in CI: needs root for the 128 MB CPU share).
##        PARTS="functions cold checks deploy sweep" picks parts; all by default
FUNCTIONS := expire-logs deploy-on-push scale-to-zero scale-on-ingress reset-dataspace watch-rollouts verify-rollout
bench: setup
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r tests/bench/requirements.txt
	rustup target add aarch64-unknown-linux-gnu
	$(CARGO) build --release --workspace --bins --exclude nightshift-tests --exclude nightshift-cli --example probe_overhead
	@for f in $(FUNCTIONS); do \
		echo "cargo lambda build --release --arm64 --bin $$f"; \
		$(CARGO) lambda build --release --arm64 --bin $$f --quiet || exit 1; \
	done
	$(CARGO) run --quiet -p nightshift-tests --bin bench -- $(PARTS)

## template: cfn-lint the SAM template and registry.yaml (sam validate --lint misses circular
##           dependencies), and check which parameters each choice of functions needs, that the SAM
##           transform takes each, and what the accounts' parameters make (the reader role's trust);
##           and the GitHub Action (action.yml) with its example workflow
template:
	cfn-lint template.yaml registry.yaml
	$(PYTHON) tests/template/check_template.py
	$(PYTHON) tests/template/check_action.py

## lint: rustfmt, and clippy over the workspace with warnings as errors
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## sam-build: the deployable arm64 binaries, through cargo-lambda (pip install cargo-lambda aws-sam-cli)
sam-build:
	sam build

clean:
	$(CARGO) clean
	rm -rf .aws-sam
