/* test_curves.c — training curves (runtime/curves.c): recording through
 * the epoch callback, the CSV's numbers, and an SVG that is well-formed
 * XML (xmllint, installed by scripts/install-deps.sh) with one path per
 * curve that has data. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bp.h"
#include "support.h"

static int printed;

static int count_calls(const bp_epoch_report *r, void *user)
{
    (void)r;
    printed += *(int *)user;
    return r->epoch == 3;   /* stop after epoch 3 */
}

static void record(bp_curves *c, int epoch, double tl, double vl, double ta, double va, int *rc)
{
    bp_epoch_report r;
    memset(&r, 0, sizeof r);
    r.epoch = epoch;
    r.epochs = 4;
    r.train_loss = tl;
    r.test_loss = vl;
    r.train_acc = ta;
    r.test_acc = va;
    *rc = bp_curves_record(&r, c);
}

static void test_record_and_csv(void)
{
    bp_curve_point points[3];
    bp_curves c;
    bp_curves_init(&c, points, 3);
    int one = 1, rc = 0;
    c.then = count_calls;
    c.then_user = &one;
    printed = 0;
    record(&c, 1, 1.5, 1.6, NAN, 0.5, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    record(&c, 2, 0.75, 0.9, NAN, 0.75, &rc);
    record(&c, 3, 0.25, 0.5, NAN, 1, &rc);
    CU_ASSERT_EQUAL(rc, 1);          /* what `then` returned */
    record(&c, 4, 0.125, 0.25, NAN, 1, &rc);
    CU_ASSERT_EQUAL(printed, 4);
    CU_ASSERT_EQUAL(c.count, 3);
    CU_ASSERT_EQUAL(c.dropped, 1);
    CU_ASSERT_DOUBLE_EQUAL(points[1].test_loss, 0.9, 0);

    char *path = test_tmp_path("curves.csv");
    char err[256] = "";
    CU_ASSERT_EQUAL(bp_curves_write_csv(&c, path, err, sizeof err), 0);
    char *text = test_read_file(path, NULL);
    CU_ASSERT(text && !strcmp(text, "epoch,train_loss,test_loss,train_acc,test_acc\n"
                                    "1,1.5,1.6,,0.5\n2,0.75,0.9,,0.75\n3,0.25,0.5,,1\n"));
    free(text);
    free(path);
    CU_ASSERT_EQUAL(bp_curves_write_csv(&c, "/nonexistent-dir/x.csv", err, sizeof err), BP_ERR_IO);
    CU_ASSERT(strstr(err, "/nonexistent-dir/x.csv: cannot write") != NULL);
    CU_ASSERT_EQUAL(bp_curves_write_csv(NULL, "x.csv", err, sizeof err), BP_ERR_ARG);
}

static void test_svg(void)
{
    bp_curve_point points[40];
    bp_curves c;
    bp_curves_init(&c, points, 40);
    int rc;
    for (int e = 1; e <= 30; e++)
        record(&c, e, 2.0 / e, 2.2 / e + 0.05, 1 - 0.5 / e, 1 - 0.6 / e, &rc);
    char *path = test_tmp_path("curves.svg");
    char err[256] = "";
    CU_ASSERT_EQUAL(bp_curves_write_svg(&c, path, "a <title> & more", err, sizeof err), 0);
    char *svg = test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(svg);
    int paths = 0;
    for (const char *p = svg; (p = strstr(p, "<path class=\"curve\"")); p++)
        paths++;
    CU_ASSERT_EQUAL(paths, 4);
    CU_ASSERT(strstr(svg, "a &lt;title&gt; &amp; more") != NULL);
    CU_ASSERT(strstr(svg, ">epoch</text>") && strstr(svg, ">loss</text>") &&
              strstr(svg, ">accuracy</text>") && strstr(svg, ">test accuracy"));
    CU_ASSERT(strstr(svg, "href") == NULL);   /* self-contained */
    char *cmd = test_format("xmllint --noout '%s'", path);
    char *xerr = NULL;
    rc = test_run(cmd, NULL, &xerr);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        fprintf(stderr, "\nxmllint: %s\n", xerr ? xerr : "");
    free(xerr);
    free(cmd);
    free(svg);

    /* no accuracy: two curves, no right axis */
    bp_curves_init(&c, points, 40);
    for (int e = 1; e <= 5; e++)
        record(&c, e, 1.0 / e, NAN, NAN, NAN, &rc);
    CU_ASSERT_EQUAL(bp_curves_write_svg(&c, path, NULL, err, sizeof err), 0);
    svg = test_read_file(path, NULL);
    CU_ASSERT(svg && strstr(svg, "<path class=\"curve\"") && !strstr(svg, ">accuracy</text>"));
    free(svg);
    bp_curves_init(&c, points, 40);
    CU_ASSERT_EQUAL(bp_curves_write_svg(&c, path, NULL, err, sizeof err), BP_ERR_ARG);
    CU_ASSERT(strstr(err, "no epochs recorded") != NULL);
    /* the failed call left the earlier chart as it was */
    svg = test_read_file(path, NULL);
    CU_ASSERT(svg && strstr(svg, "</svg>") != NULL);
    free(svg);
    free(path);
}

void register_curves(void)
{
    CU_pSuite s = CU_add_suite("curves", NULL, NULL);
    CU_add_test(s, "record through on_epoch, CSV", test_record_and_csv);
    CU_add_test(s, "SVG: well-formed, a path per curve", test_svg);
}
