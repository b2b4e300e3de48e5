# bpgen — build, test, demo, install.
#
#   make              build/bpgen and build/libbp.a (and build/libbp_mpi.a
#                     where mpicc exists)
#   make test         every test suite (SANITIZE=1: under ASan and UBSan)
#   make demo         the built-in example
#   make docs         the pictures in docs/img: example graphs, iris's training curves
#   make examples     build and run every example
#   make bench        benchmarks (bench/README.md); bench-fashion: against PyTorch;
#                     bench-mpi: only 2 MPI ranks against 1; bench-optim: the
#                     optimiser update alone
#   make install PREFIX=/usr/local
#   make fuzz FUZZ_SECONDS=60   each fuzz target for that long (libFuzzer)
#
# Everything built goes under $(BUILD); SANITIZE=1 uses a build folder of
# its own so the two never mix.

CC      ?= cc
PREFIX  ?= /usr/local
BISON   ?= bison
FLEX    ?= flex

WARN     = -std=c99 -Wall -Wextra -pedantic
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
LDLIBS   = -lm

ifeq ($(SANITIZE),1)
BUILD   ?= build/san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else ifeq ($(SANITIZE),fuzz)
# `make fuzz` builds the fuzz targets this way (scripts/fuzz.sh)
BUILD   ?= build/fuzz
CC       = clang
SANFLAGS = -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
           -fno-sanitize-recover=all
else
BUILD   ?= build
SANFLAGS =
endif

ALL_CFLAGS = $(WARN) $(CFLAGS) $(SANFLAGS) -D_POSIX_C_SOURCE=200809L
GEN        = $(BUILD)/gen

# ---------------------------------------------------------------- compiler
COMPILER_SRC = $(filter-out compiler/main.c,$(wildcard compiler/*.c)) $(wildcard compiler/emit/*.c)
COMPILER_OBJ = $(COMPILER_SRC:compiler/%.c=$(BUILD)/compiler/%.o) \
               $(GEN)/parser.o $(GEN)/lexer.o
COMPILER_INC = -Icompiler -I$(GEN) -Igrammar

# ---------------------------------------------------------------- runtime
RUNTIME_SRC = $(wildcard runtime/*.c)
RUNTIME_OBJ = $(RUNTIME_SRC:runtime/%.c=$(BUILD)/runtime/%.o)

# ---------------------------------------------------------------- MPI
# build/libbp_mpi.a: the MPI all-reduce hook for data-parallel training
# (runtime/mpi/), built with mpicc where it exists and skipped, with a
# message, where not. libbp.a and generated code never need MPI.
MPICC      ?= mpicc
HAVE_MPICC := $(shell command -v $(MPICC) 2>/dev/null)
ifneq ($(HAVE_MPICC),)
MPI_LIB = $(BUILD)/libbp_mpi.a
else
MPI_LIB = mpi-skipped
endif

# ---------------------------------------------------------------- tests
TEST_SRC = $(wildcard tests/test_*.c)
TEST_OBJ = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%.o) $(BUILD)/tests/registry.o \
           $(BUILD)/tests/runner.o $(BUILD)/tests/support.o $(FUZZ_OBJ) \
           $(BUILD)/tests/failalloc.o

# The allocation-failure tests (tests/failalloc.h): run_tests and a bpgen
# built for them route the project's allocations through tests/failalloc.c.
FAILALLOC_WRAP = -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free \
                 -Wl,--wrap=strdup,--wrap=fopen,--wrap=fdopen

# ---------------------------------------------------------------- fuzz targets
# Every tests/fuzz/fuzz_NAME.c defines `int fuzz_NAME(data, size)` (see
# tests/fuzz/fuzz.h): make test feeds it its kept inputs, make fuzz links
# it with libFuzzer (and zlib, for the IDX reader).
FUZZ_SRC     = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES   = $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_OBJ     = $(FUZZ_SRC:tests/%.c=$(BUILD)/tests/%.o) $(FUZZ_HELPERS) \
               $(BUILD)/tests/fuzz_targets.o
FUZZ_HELPERS = $(BUILD)/tests/fuzz/harness.o $(BUILD)/tests/fuzz/models.o
FUZZ_SECONDS ?= 60

.DEFAULT_GOAL := all
.PHONY: all test demo docs examples bench bench-mpi bench-fashion install clean build-deps \
        test-deps data-deps mpi-skipped fuzz fuzz-targets FORCE
.DELETE_ON_ERROR:

# On a fresh machine the tools are installed on first use, so `make demo`
# and `make test` are the only commands a new user types.
build-deps:
	@command -v $(BISON) >/dev/null 2>&1 && command -v $(FLEX) >/dev/null 2>&1 \
	  && [ -f /usr/include/zlib.h ] || sh scripts/install-deps.sh build

test-deps: build-deps
	@sh scripts/install-deps.sh test

# Fashion-MNIST, from the Debian package dataset-fashion-mnist (installed
# on first use by `make examples`, `make test` and `make bench`).
FASHION_DIR = /usr/share/datasets/fashion-mnist

data-deps: build-deps
	@[ -d $(FASHION_DIR) ] || sh scripts/install-deps.sh data

# Changed flags rebuild everything: $(BUILD)/flags holds the flags the
# objects were built with, and is rewritten (so newer than them) only when
# they differ from the current ones. `make CFLAGS='-O3 -march=native'` in a
# built checkout then rebuilds rather than doing nothing.
FLAGS_NOW = $(CC) $(ALL_CFLAGS)
$(BUILD)/flags: FORCE | $(BUILD)/runtime
	@if [ "$$(cat $@ 2>/dev/null)" != '$(FLAGS_NOW)' ]; then \
	  echo '$(FLAGS_NOW)' > $@; fi

FORCE:

all: $(BUILD)/bpgen $(BUILD)/libbp.a $(MPI_LIB)

mpi-skipped:
	@echo "make: $(MPICC) not found, skipping $(BUILD)/libbp_mpi.a (data-parallel" \
	  "training over MPI; scripts/install-deps.sh installs libopenmpi-dev)"

$(BUILD)/libbp_mpi.a: $(BUILD)/runtime/mpi/bp_mpi.o
	rm -f $@
	ar rcs $@ $^

$(BUILD)/runtime/mpi/bp_mpi.o: runtime/mpi/bp_mpi.c runtime/mpi/bp_mpi.h runtime/bp.h | $(BUILD)/runtime/mpi
	$(MPICC) $(ALL_CFLAGS) -Iruntime -c -o $@ $<

$(BUILD)/bpgen: $(BUILD)/compiler/main.o $(BUILD)/libbpgen.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libbpgen.a: $(COMPILER_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libbp.a: $(RUNTIME_OBJ)
	rm -f $@
	ar rcs $@ $^

$(GEN)/parser.c $(GEN)/parser.h &: grammar/parser.y | $(GEN) build-deps
	$(BISON) -Wall -Werror --defines=$(GEN)/parser.h -o $(GEN)/parser.c $<

$(GEN)/lexer.c $(GEN)/lexer.h &: grammar/lexer.l | $(GEN) build-deps
	$(FLEX) --header-file=$(GEN)/lexer.h -o $(GEN)/lexer.c $<

# Generated scanners and parsers are not -pedantic clean; they get the
# same standard but fewer warnings.
$(GEN)/%.o: $(GEN)/%.c $(GEN)/parser.h $(GEN)/lexer.h compiler/bpgen.h compiler/ops.h $(BUILD)/flags
	$(CC) -std=c99 $(CFLAGS) $(SANFLAGS) -D_POSIX_C_SOURCE=200809L $(COMPILER_INC) -c -o $@ $<

$(BUILD)/compiler/%.o: compiler/%.c compiler/bpgen.h compiler/ops.h $(GEN)/parser.h $(GEN)/lexer.h $(BUILD)/flags | $(BUILD)/compiler
	$(CC) $(ALL_CFLAGS) $(COMPILER_INC) -c -o $@ $<

# The emitter, one file per responsibility (compiler/emit/emit.h lists them)
$(BUILD)/compiler/emit/%.o: compiler/emit/%.c compiler/emit/emit.h compiler/bpgen.h compiler/ops.h $(GEN)/parser.h $(GEN)/lexer.h $(BUILD)/flags | $(BUILD)/compiler/emit
	$(CC) $(ALL_CFLAGS) $(COMPILER_INC) -c -o $@ $<

$(BUILD)/runtime/%.o: runtime/%.c $(wildcard runtime/*.h) $(BUILD)/flags | $(BUILD)/runtime
	$(CC) $(ALL_CFLAGS) -Iruntime -c -o $@ $<

# ---------------------------------------------------------------- tests
# Every tests/test_NAME.c defines `void register_NAME(void)`; the registry
# calls them all, so adding a suite is adding a file.
$(BUILD)/tests/registry.c: $(TEST_SRC) | $(BUILD)/tests
	{ for f in $(TEST_SRC); do n=$$(basename $$f .c); n=$${n#test_}; \
	    echo "void register_$$n(void);"; done; \
	  echo "void tests_register_all(void);"; \
	  echo "void tests_register_all(void) {"; \
	  for f in $(TEST_SRC); do n=$$(basename $$f .c); n=$${n#test_}; \
	    echo "    register_$$n();"; done; \
	  echo "}"; } > $@

TEST_DEFS = -DTEST_BPGEN='"$(BUILD)/bpgen"' -DTEST_LIBBP='"$(BUILD)/libbp.a"' \
            -DTEST_LIBBP_MPI='"$(BUILD)/libbp_mpi.a"' -DTEST_MPICC='"$(MPICC)"' \
            -DTEST_SANITIZE=$(if $(SANFLAGS),1,0) \
            -DTEST_CC='"$(CC)"' -DTEST_CFLAGS='"$(WARN) $(SANFLAGS) -O1 -g"' \
            -DTEST_TMP='"$(BUILD)/tmp"' \
            -DTEST_MAKE='"$(MAKE) --no-print-directory SANITIZE=$(SANITIZE) BUILD=$(BUILD)"' \
            -DTEST_SANFLAGS='"$(SANFLAGS)"' \
            -DTEST_BPGEN_FAILALLOC='"$(BUILD)/tests/bpgen_failalloc"'

$(BUILD)/tests/%.o: tests/%.c tests/support.h tests/fuzz/fuzz.h compiler/bpgen.h runtime/bp.h $(GEN)/parser.h $(BUILD)/flags | $(BUILD)/tests test-deps
	$(CC) $(ALL_CFLAGS) $(COMPILER_INC) -Iruntime -Itests -Itests/fuzz $(TEST_DEFS) -c -o $@ $<

$(BUILD)/tests/fuzz/%.o: tests/fuzz/%.c tests/fuzz/fuzz.h compiler/bpgen.h runtime/bp.h $(GEN)/parser.h | $(BUILD)/tests/fuzz test-deps
	$(CC) $(ALL_CFLAGS) $(COMPILER_INC) -Iruntime -Itests/fuzz -c -o $@ $<

$(BUILD)/tests/fuzz_targets.c: $(FUZZ_SRC) | $(BUILD)/tests
	{ echo '#include "fuzz.h"'; \
	  for n in $(FUZZ_NAMES); do echo "int fuzz_$$n(const unsigned char *, size_t);"; done; \
	  echo 'const fuzz_target fuzz_targets[] = {'; \
	  for n in $(FUZZ_NAMES); do echo "    {\"$$n\", fuzz_$$n},"; done; \
	  echo '    {NULL, NULL}'; echo '};'; } > $@

$(BUILD)/tests/fuzz_targets.o: $(BUILD)/tests/fuzz_targets.c tests/fuzz/fuzz.h
	$(CC) $(ALL_CFLAGS) -Itests/fuzz -c -o $@ $<

$(BUILD)/tests/registry.o: $(BUILD)/tests/registry.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/run_tests: $(TEST_OBJ) $(BUILD)/libbpgen.a $(BUILD)/libbp.a
	$(CC) $(ALL_CFLAGS) $(FAILALLOC_WRAP) -o $@ $^ -lcunit -lz -pthread $(LDLIBS)

$(BUILD)/tests/bpgen_failalloc: $(BUILD)/compiler/main.o $(BUILD)/tests/failalloc.o $(BUILD)/libbpgen.a
	$(CC) $(ALL_CFLAGS) $(FAILALLOC_WRAP) -o $@ $^ $(LDLIBS)

# On a fresh machine test-deps may install Open MPI after this Makefile
# looked for mpicc: the MPI library is then built here, for the MPI test.
test: all $(BUILD)/run_tests $(BUILD)/tests/bpgen_failalloc
	@mkdir -p $(BUILD)/tmp
	@[ -n "$(HAVE_MPICC)" ] || ! command -v $(MPICC) >/dev/null 2>&1 \
	  || $(MAKE) -s $(BUILD)/libbp_mpi.a
	$(BUILD)/run_tests

# ---------------------------------------------------------------- fuzzing
# With SANITIZE=fuzz (clang, libFuzzer): one binary per target.
fuzz-targets: $(FUZZ_NAMES:%=$(BUILD)/fuzz_%)

$(BUILD)/fuzz_%: tests/fuzz/libfuzzer_main.c $(BUILD)/tests/fuzz/fuzz_%.o \
                 $(FUZZ_HELPERS) $(BUILD)/libbpgen.a $(BUILD)/libbp.a
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -DFUZZ_ENTRY=fuzz_$* -o $@ $^ -lz $(LDLIBS)

# Builds the targets with clang and runs each for FUZZ_SECONDS seconds.
fuzz:
	@sh scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_NAMES)

# ---------------------------------------------------------------- demo, examples
demo: all
	@sh scripts/demo.sh $(BUILD)

# The pictures docs/tutorial.md shows: `bpgen --dot` of example models,
# rendered by Graphviz (installed on first use).
DOC_GRAPHS = chain logistic height iris
docs: all
	@command -v dot >/dev/null 2>&1 || sh scripts/install-deps.sh
	@mkdir -p docs/img
	@for m in $(DOC_GRAPHS); do \
	  $(BUILD)/bpgen examples/$$m/$$m.net --dot | dot -Tsvg -o docs/img/$$m.svg && \
	  $(BUILD)/bpgen examples/$$m/$$m.net --dot=backward | dot -Tsvg -o docs/img/$$m-backward.svg && \
	  echo "docs/img/$$m.svg docs/img/$$m-backward.svg" || exit 1; done
	@MAKEFLAGS= MAKELEVEL= $(MAKE) -s -C examples BUILD=$(abspath $(BUILD)) run-iris >/dev/null
	@cp $(BUILD)/examples/iris/iris-curves.svg docs/img/iris-curves.svg
	@echo "docs/img/iris-curves.svg (from the iris example's training)"

# With mpicc and mpirun, the MPI example (mpirun -np 2) runs too (not
# under the sanitizers: LeakSanitizer reports Open MPI's own allocations;
# the test suite runs it with leak checks off, see tests/test_mpi.c).
HAVE_MPIRUN := $(shell command -v mpirun 2>/dev/null)
examples: all data-deps
	@$(MAKE) -s -C examples BUILD=$(abspath $(BUILD)) CC="$(CC)" CFLAGS="$(OPT) $(SANFLAGS)" \
	  MPICC="$(MPICC)" all $(if $(HAVE_MPICC),$(if $(HAVE_MPIRUN),$(if $(SANFLAGS),,mpi)))

bench: all bench-fashion bench-compile bench-optim
	@sh bench/run.sh $(BUILD)
	@echo
	@sh bench/mpi.sh $(BUILD)

# bpgen's own compile time, memory and output size on generated models of
# 10 to 100 000 statements, and cc -O2's time on the generated code
# (bench/README.md).
.PHONY: bench-compile
bench-compile: all
	@sh bench/compile/run.sh $(BUILD)

# Only the MPI part: 2 ranks against 1 (bench/README.md).
bench-mpi: all
	@sh bench/mpi.sh $(BUILD)

# One epoch of the Fashion-MNIST MLP: bpgen against PyTorch (see
# bench/README.md).
bench-fashion: all data-deps
	@sh bench/fashion.sh $(BUILD)

# The optimiser update alone: ns per parameter for Adam and SGD on 200 000
# float parameters, Adam on double ones (bench/README.md, "Optimiser").
.PHONY: bench-optim
bench-optim: $(BUILD)/libbp.a
	@mkdir -p $(BUILD)/bench
	$(CC) $(ALL_CFLAGS) -Iruntime -o $(BUILD)/bench/optim bench/optim.c \
	  $(BUILD)/libbp.a -pthread $(LDLIBS)
	@$(BUILD)/bench/optim

# The convolution kernels against hand C over OpenBLAS and PyTorch
# (bench/conv/README.md).
.PHONY: bench-conv
bench-conv: $(BUILD)/libbp.a
	@sh scripts/install-bench-deps.sh
	@mkdir -p $(BUILD)/bench
	$(CC) $(ALL_CFLAGS) -Iruntime -o $(BUILD)/bench/conv_bench bench/conv/conv_bench.c \
	  $(BUILD)/libbp.a -lopenblas -pthread $(LDLIBS)
	@/usr/bin/python3 bench/conv/run.py $(BUILD)

# ---------------------------------------------------------------- install, clean
# The version has one home, runtime/bp.h; the .pc file, CMake's version file
# and the manual page get it from there.
VERSION_MAJOR := $(shell sed -n 's/^\#define BP_VERSION_MAJOR //p' runtime/bp.h)
VERSION_MINOR := $(shell sed -n 's/^\#define BP_VERSION_MINOR //p' runtime/bp.h)
VERSION_PATCH := $(shell sed -n 's/^\#define BP_VERSION_PATCH //p' runtime/bp.h)
VERSION        = $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
SUBST_VERSION  = sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' \
                     -e 's|@VERSION_MINOR@|$(VERSION_MINOR)|g' -e 's|@PREFIX@|$(PREFIX)|g'

# DESTDIR stages the tree elsewhere (for packaging); the paths written into
# bpgen.pc name PREFIX, where it will finally live, and bpgenConfig.cmake
# finds everything relative to itself.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/lib/cmake/bpgen \
	  $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BUILD)/bpgen $(DESTDIR)$(PREFIX)/bin/bpgen
	install -m 644 runtime/bp.h $(DESTDIR)$(PREFIX)/include/bp.h
	install -m 644 $(BUILD)/libbp.a $(DESTDIR)$(PREFIX)/lib/libbp.a
	$(SUBST_VERSION) cmake/bpgen.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/bpgen.pc
	install -m 644 cmake/bpgenConfig.cmake $(DESTDIR)$(PREFIX)/lib/cmake/bpgen/bpgenConfig.cmake
	$(SUBST_VERSION) cmake/bpgenConfigVersion.cmake.in \
	  > $(DESTDIR)$(PREFIX)/lib/cmake/bpgen/bpgenConfigVersion.cmake
	$(SUBST_VERSION) man/bpgen.1 > $(DESTDIR)$(PREFIX)/share/man/man1/bpgen.1
	if [ -f $(BUILD)/libbp_mpi.a ]; then \
	  install -m 644 runtime/mpi/bp_mpi.h $(DESTDIR)$(PREFIX)/include/bp_mpi.h && \
	  install -m 644 $(BUILD)/libbp_mpi.a $(DESTDIR)$(PREFIX)/lib/libbp_mpi.a; fi

clean:
	rm -rf build

$(BUILD)/compiler $(BUILD)/compiler/emit $(BUILD)/runtime $(BUILD)/runtime/mpi $(BUILD)/tests $(BUILD)/tests/fuzz $(GEN):
	mkdir -p $@
