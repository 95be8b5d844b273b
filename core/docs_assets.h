/* The docs page's files (core/docs/), compiled in by a generated source (scripts/embed). */
#ifndef TK_CORE_DOCS_ASSETS_H
#define TK_CORE_DOCS_ASSETS_H

#include <stddef.h>

/* Each NUL-terminated; the length leaves the NUL out. */
extern const unsigned char tk_docs_html[], tk_docs_js[], tk_docs_css[];
extern const size_t tk_docs_html_len, tk_docs_js_len, tk_docs_css_len;

#endif
