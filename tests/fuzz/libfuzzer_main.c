/* libfuzzer_main.c — libFuzzer's entry point for one target: built once
 * per target with -DFUZZ_ENTRY=fuzz_NAME (see fuzz.h and `make fuzz`). */
#include <stddef.h>
#include <stdint.h>

int FUZZ_ENTRY(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return FUZZ_ENTRY(data, size);
}
