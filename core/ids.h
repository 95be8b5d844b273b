/* Identifiers: random UUIDs (version 4). */
#ifndef TK_CORE_IDS_H
#define TK_CORE_IDS_H

/* Writes a random UUID v4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") into out (>= 37 bytes). Any
 * thread. */
void tk_uuid4(char out[37]);

#endif
