/* Fuzzes the Cohere v2 provider's wire code: answers, errors, tools and requests. See
 * ai_provider.h. */
#include "../../plugins/ai_cohere/cohere.c"

#define FUZZ_TOOLS(t) aihttp_function_tools(t)
#include "ai_provider.h"
