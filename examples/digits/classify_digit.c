/* classify_digit.c — inference only: load trained weights, classify a digit
 * drawn as ASCII art.
 *
 * An image is 8 lines of 8 characters; each character is a pixel whose
 * darkness is its place in the palette " .:-=+*#%@" (space 0, '@' 16, the
 * scale of the digits data; any other character counts as '@'). Short lines
 * are padded with spaces, and lines starting with ';' are comments.
 *
 * Usage: classify_digit WEIGHTS_FILE            the digits drawn below
 *        classify_digit WEIGHTS_FILE ART_FILE   one image from a file
 *
 * Only the generated digits_predict and the runtime's weights loader are
 * used: no training code, no data set. The pixels are scaled by 1/16 as in
 * train_digits.c. Ends with `result: classify_digit drawings_accuracy A`
 * (the fraction of the drawings below classified as what they are meant to
 * be; exit 1 unless all are right), or `result: classify_digit predicted D`
 * for a file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bp.h"
#include "digits.h"

static const char palette[] = " .:-=+*#%@";

typedef struct {
    int digit; /* what the drawing is meant to be */
    const char *rows[8];
} Drawing;

static const Drawing drawings[] = {
    {7, {"  @@@@@ ",
         "  -::%% ",
         "     @: ",
         "   =@@@-",
         "   :@.  ",
         "   %*   ",
         "  =@    ",
         "  @=    "}},
    {0, {"   =@%  ",
         "  #@:@* ",
         " :@: :@:",
         " =@   @=",
         " =@   @=",
         " :@. .@:",
         "  *@:@* ",
         "   =@=  "}},
    {3, {"  =@@%. ",
         "  *: =@ ",
         "     *@ ",
         "   :@@: ",
         "     =@-",
         "      @=",
         "  ::.*@:",
         "  =@@%- "}},
    {1, {"    #@  ",
         "   *@@  ",
         "  =%@@  ",
         "    @@  ",
         "    @@  ",
         "    @@  ",
         "    @@  ",
         "   :@@: "}},
};

/* Pixel darkness 0..16 of one character. */
static float darkness(char c)
{
    const char *p = strchr(palette, c);
    if (c == '\0' || c == '\n' || c == '\r' || c == '\t')
        return 0;
    int level = p ? (int)(p - palette) : 9;
    return (float)level * 16.0f / 9.0f;
}

static void to_pixels(const char *const rows[8], float x[64])
{
    for (int r = 0; r < 8; r++) {
        size_t len = rows[r] ? strlen(rows[r]) : 0;
        for (int c = 0; c < 8; c++)
            x[r * 8 + c] = ((size_t)c < len ? darkness(rows[r][c]) : 0) / 16.0f;
    }
}

/* Reads 8 lines of art from path into rows (each a buffer of 9+). */
static int read_art(const char *path, char rows[8][64])
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[256];
    int n = 0;
    while (n < 8 && fgets(line, sizeof line, f)) {
        if (line[0] == ';')
            continue;
        line[strcspn(line, "\r\n")] = '\0';
        line[8] = '\0'; /* line holds at least 9 bytes; longer lines are cut */
        strcpy(rows[n++], line);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad || n == 0) {
        fprintf(stderr, "%s: %s\n", path, bad ? "read error" : "no lines of art");
        return -1;
    }
    while (n < 8)
        rows[n++][0] = '\0';
    return 0;
}

/* Classifies one image; prints it beside the probabilities. Returns the
 * predicted digit. */
static int classify(const float *theta, void *ws, const char *const rows[8])
{
    float x[64], p[10];
    to_pixels(rows, x);
    const float *inputs[2] = {x, NULL}; /* the label y is not needed */
    float *outputs[1] = {p};
    digits_predict(theta, inputs, 1, ws, outputs);
    int best = 0;
    for (int k = 1; k < 10; k++)
        if (p[k] > p[best])
            best = k;
    for (int r = 0; r < 10; r++) {
        if (r < 8)
            printf("  |%-8.8s|   ", rows[r]);
        else
            printf("  %10s   ", "");
        int bar = (int)(p[r] * 30 + 0.5f);
        printf("%d %5.3f %.*s\n", r, p[r], bar, "##############################");
    }
    printf("  predicted: %d\n\n", best);
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s WEIGHTS_FILE [ART_FILE]\n", argv[0]);
        return 2;
    }
    char err[512];
    float *theta = malloc(sizeof *theta * digits_NUM_PARAMS);
    void *ws = malloc(digits_workspace_size(1) + 1);
    if (!theta || !ws) {
        fprintf(stderr, "classify_digit: out of memory\n");
        free(theta);
        free(ws);
        return 1;
    }
    if (bp_weights_load(argv[1], &digits_model, theta, err, sizeof err) != 0) {
        fprintf(stderr, "classify_digit: %s\n", err);
        free(theta);
        free(ws);
        return 1;
    }
    int status = 0;
    if (argc == 3) {
        char buf[8][64];
        const char *rows[8];
        if (read_art(argv[2], buf) != 0) {
            status = 1;
        } else {
            for (int r = 0; r < 8; r++)
                rows[r] = buf[r];
            printf("%s:\n", argv[2]);
            printf("result: classify_digit predicted %d\n", classify(theta, ws, rows));
        }
    } else {
        int n = (int)(sizeof drawings / sizeof drawings[0]), right = 0;
        for (int i = 0; i < n; i++) {
            printf("a %d drawn by hand:\n", drawings[i].digit);
            right += classify(theta, ws, drawings[i].rows) == drawings[i].digit;
        }
        printf("%d of %d drawings classified right\n", right, n);
        printf("result: classify_digit drawings_accuracy %.3f\n", (double)right / n);
        status = right == n ? 0 : 1;
    }
    free(theta);
    free(ws);
    return status;
}
