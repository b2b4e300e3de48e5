/* curves.c — training curves recorded from the epoch reports, written as
 * CSV and as an SVG line chart (see bp.h).
 *
 * The chart is drawn by hand rather than with a plotting library: it is a
 * few dozen SVG elements, and the runtime depends on nothing but libc.
 * Loss is on the left axis (from 0, or from the smallest loss when that is
 * negative), accuracy on the right axis (0 to 1); every curve is one
 * <path>, and a value that is NaN ends a segment. */
#include "bp.h"
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Output goes to a temporary file beside `path`, renamed over it when
 * complete: a failed write never leaves half a chart or replaces a good
 * one. */
static FILE *open_output(const char *path, char **tmp, char *err, size_t err_size, int *status)
{
    FILE *f = bp_create_temp(path, tmp);
    if (!f)
        *status = bp_error(errno == ENOMEM ? BP_ERR_NOMEM : BP_ERR_IO, err, err_size,
                           "%s: cannot write: %s", path, strerror(errno));
    return f;
}

static int close_output(FILE *f, const char *path, char *tmp, char *err, size_t err_size)
{
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    if (!bad && rename(tmp, path) != 0)
        bad = 1;
    int status = BP_OK;
    if (bad) {
        status = bp_error(BP_ERR_IO, err, err_size, "%s: cannot write: %s", path,
                          strerror(errno ? errno : EIO));
        remove(tmp);
    }
    free(tmp);
    return status;
}

void bp_curves_init(bp_curves *c, bp_curve_point *storage, int capacity)
{
    memset(c, 0, sizeof *c);
    c->points = storage;
    c->capacity = storage && capacity > 0 ? capacity : 0;
}

int bp_curves_record(const bp_epoch_report *r, void *curves)
{
    bp_curves *c = curves;
    if (!c || !r)
        return 0;
    if (c->count < c->capacity) {
        bp_curve_point *p = &c->points[c->count++];
        p->epoch = r->epoch;
        p->train_loss = r->train_loss;
        p->test_loss = r->test_loss;
        p->train_acc = r->train_acc;
        p->test_acc = r->test_acc;
    } else {
        c->dropped++;
    }
    return c->then ? c->then(r, c->then_user) : 0;
}

static void csv_value(FILE *f, double v)
{
    if (!isnan(v))
        fprintf(f, "%.9g", v);
}

int bp_curves_write_csv(const bp_curves *c, const char *path, char *err, size_t err_size)
{
    if (!c || !path)
        return bp_fail(err, err_size, "bp_curves_write_csv: no curves or no path");
    char *tmp = NULL;
    int status = BP_OK;
    FILE *f = open_output(path, &tmp, err, err_size, &status);
    if (!f)
        return status;
    fputs("epoch,train_loss,test_loss,train_acc,test_acc\n", f);
    for (int i = 0; i < c->count; i++) {
        const bp_curve_point *p = &c->points[i];
        fprintf(f, "%d,", p->epoch);
        csv_value(f, p->train_loss);
        fputc(',', f);
        csv_value(f, p->test_loss);
        fputc(',', f);
        csv_value(f, p->train_acc);
        fputc(',', f);
        csv_value(f, p->test_acc);
        fputc('\n', f);
    }
    return close_output(f, path, tmp, err, err_size);
}

/* ---------------------------------------------------------------- the chart */

enum { WIDTH = 760, HEIGHT = 470, LEFT = 70, RIGHT = 70, TOP = 50, BOTTOM = 90 };

typedef struct {
    double lo, hi, step;
} Axis;

/* A step of 1, 2 or 5 times a power of ten giving about `ticks` ticks. */
static double nice_step(double range, int ticks)
{
    if (!(range > 0))
        return 1;
    double raw = range / ticks;
    double p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

static Axis nice_axis(double lo, double hi, int ticks)
{
    Axis a;
    if (!(hi > lo))
        hi = lo + 1;
    a.step = nice_step(hi - lo, ticks);
    a.lo = floor(lo / a.step) * a.step;
    a.hi = ceil(hi / a.step) * a.step;
    return a;
}

static double sx(const Axis *x, double v)
{
    return LEFT + (v - x->lo) / (x->hi - x->lo) * (WIDTH - LEFT - RIGHT);
}

static double sy(const Axis *y, double v)
{
    return HEIGHT - BOTTOM - (v - y->lo) / (y->hi - y->lo) * (HEIGHT - TOP - BOTTOM);
}

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            /* control characters are not allowed in XML 1.0 */
            if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\n')
                fputc(*s, f);
        }
    }
}

typedef struct {
    const char *name;
    size_t offset;      /* of the double in bp_curve_point */
    const char *color;
    int dashed;
    int right;          /* on the accuracy axis */
} Curve;

static double value_of(const bp_curve_point *p, const Curve *c)
{
    double v;
    memcpy(&v, (const char *)p + c->offset, sizeof v);
    return v;
}

static void tick_label(char *buf, size_t size, double v, double step)
{
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (decimals > 6)
        decimals = 6;
    snprintf(buf, size, "%.*f", decimals, fabs(v) < step * 1e-9 ? 0.0 : v);
}

int bp_curves_write_svg(const bp_curves *c, const char *path, const char *title, char *err,
                        size_t err_size)
{
    static const Curve curves[] = {
        {"train loss", offsetof(bp_curve_point, train_loss), "#1f77b4", 0, 0},
        {"test loss", offsetof(bp_curve_point, test_loss), "#ff7f0e", 0, 0},
        {"train accuracy", offsetof(bp_curve_point, train_acc), "#1f77b4", 1, 1},
        {"test accuracy", offsetof(bp_curve_point, test_acc), "#2ca02c", 1, 1},
    };
    enum { NCURVES = sizeof curves / sizeof *curves };
    if (!c || !path)
        return bp_fail(err, err_size, "bp_curves_write_svg: no curves or no path");
    if (c->count == 0)
        return bp_fail(err, err_size, "%s: no epochs recorded, nothing to draw", path);

    /* which curves have data, and the ranges */
    int present[NCURVES] = {0};
    double lo = INFINITY, hi = -INFINITY;
    int any_acc = 0;
    for (int k = 0; k < NCURVES; k++)
        for (int i = 0; i < c->count; i++) {
            double v = value_of(&c->points[i], &curves[k]);
            if (!isfinite(v))
                continue;
            present[k] = 1;
            if (curves[k].right) {
                any_acc = 1;
            } else {
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        }
    if (!(lo <= hi)) {
        lo = 0;
        hi = 1;
    }
    Axis x = nice_axis(c->points[0].epoch > 0 ? 0 : c->points[0].epoch,
                       c->points[c->count - 1].epoch, 8);
    Axis y = nice_axis(lo < 0 ? lo : 0, hi, 5);
    Axis acc = {0, 1, 0.2};

    char *tmp = NULL;
    int status = BP_OK;
    FILE *f = open_output(path, &tmp, err, err_size, &status);
    if (!f)
        return status;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"Helvetica, Arial, sans-serif\" "
               "font-size=\"13\">\n",
            WIDTH, HEIGHT, WIDTH, HEIGHT);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", WIDTH, HEIGHT);
    fputs("<title>", f);
    xml_text(f, title ? title : "training curves");
    fputs("</title>\n", f);
    fprintf(f, "<text x=\"%d\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" "
               "font-weight=\"bold\">",
            WIDTH / 2);
    xml_text(f, title ? title : "training curves");
    fputs("</text>\n", f);

    /* grid and ticks */
    char label[64];
    fputs("<g stroke=\"#e5e5e5\" stroke-width=\"1\">\n", f);
    for (double v = y.lo; v <= y.hi + y.step * 1e-9; v += y.step)
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", LEFT, sy(&y, v),
                WIDTH - RIGHT, sy(&y, v));
    for (double v = x.lo; v <= x.hi + x.step * 1e-9; v += x.step)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", sx(&x, v), TOP,
                sx(&x, v), HEIGHT - BOTTOM);
    fputs("</g>\n", f);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
               "stroke=\"#333333\"/>\n",
            LEFT, TOP, WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    fputs("<g fill=\"#333333\">\n", f);
    for (double v = y.lo; v <= y.hi + y.step * 1e-9; v += y.step) {
        tick_label(label, sizeof label, v, y.step);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", LEFT - 8,
                sy(&y, v) + 4, label);
    }
    for (double v = x.lo; v <= x.hi + x.step * 1e-9; v += x.step) {
        tick_label(label, sizeof label, v, x.step);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", sx(&x, v),
                HEIGHT - BOTTOM + 20, label);
    }
    if (any_acc)
        for (double v = 0; v <= 1 + 1e-9; v += acc.step) {
            tick_label(label, sizeof label, v, acc.step);
            fprintf(f, "<text x=\"%d\" y=\"%.1f\">%s</text>\n", WIDTH - RIGHT + 8,
                    sy(&acc, v) + 4, label);
        }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">epoch</text>\n",
            (LEFT + WIDTH - RIGHT) / 2, HEIGHT - BOTTOM + 42);
    fprintf(f, "<text transform=\"translate(20 %d) rotate(-90)\" text-anchor=\"middle\">"
               "loss</text>\n",
            (TOP + HEIGHT - BOTTOM) / 2);
    if (any_acc)
        fprintf(f, "<text transform=\"translate(%d %d) rotate(90)\" text-anchor=\"middle\">"
                   "accuracy</text>\n",
                WIDTH - 22, (TOP + HEIGHT - BOTTOM) / 2);
    fputs("</g>\n", f);

    /* one path per curve; NaN breaks it */
    for (int k = 0; k < NCURVES; k++) {
        if (!present[k])
            continue;
        const Axis *ay = curves[k].right ? &acc : &y;
        fprintf(f, "<path class=\"curve\" data-name=\"%s\" fill=\"none\" stroke=\"%s\" "
                   "stroke-width=\"2\"%s d=\"",
                curves[k].name, curves[k].color,
                curves[k].dashed ? " stroke-dasharray=\"6 4\"" : "");
        int pen_down = 0;
        for (int i = 0; i < c->count; i++) {
            double v = value_of(&c->points[i], &curves[k]);
            if (!isfinite(v)) {
                pen_down = 0;
                continue;
            }
            fprintf(f, "%s%.1f %.1f", pen_down ? " L" : (i ? " M" : "M"),
                    sx(&x, c->points[i].epoch), sy(ay, v));
            pen_down = 1;
        }
        fputs("\"/>\n", f);
    }

    /* legend: one row under the plot, where no curve runs */
    int item[NCURVES], total = 0;   /* widths: line, gap, about 7 px a character */
    for (int k = 0; k < NCURVES; k++) {
        item[k] = 34 + 7 * (int)strlen(curves[k].name) + (curves[k].right ? 56 : 0) + 24;
        total += present[k] ? item[k] : 0;
    }
    int lx = (WIDTH - total) / 2, ly = HEIGHT - 16;
    fputs("<g>\n", f);
    for (int k = 0; k < NCURVES; k++) {
        if (!present[k])
            continue;
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                   "stroke-width=\"2\"%s/>\n",
                lx, ly - 4, lx + 28, ly - 4, curves[k].color,
                curves[k].dashed ? " stroke-dasharray=\"6 4\"" : "");
        fprintf(f, "<text x=\"%d\" y=\"%d\">%s%s</text>\n", lx + 34, ly, curves[k].name,
                curves[k].right ? " (right)" : "");
        lx += item[k];
    }
    fputs("</g>\n</svg>\n", f);
    return close_output(f, path, tmp, err, err_size);
}
