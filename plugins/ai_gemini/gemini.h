/* ai_gemini's parts (not part of any ABI). */
#ifndef AI_GEMINI_GEMINI_H
#define AI_GEMINI_GEMINI_H

#include <jansson.h>

/*
 * tools[{functionDeclarations[...]}], one declaration per normalised tool, its parameters
 * rewritten into the Schema subset Gemini accepts (gemini_schema.c). A new reference.
 */
json_t *gemini_tools_wire(json_t *tools);

#endif
