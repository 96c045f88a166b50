// attributes.hpp -- the table of descriptor attributes (name, type, range)
// and the descriptor object behind slay_attn_desc_t. An attribute's value
// lives in an AttnConfig field; VALUE_DIM and SOFTMAX_SCALE keep their raw
// "0 = derive it" form in a descriptor and are resolved by resolve_config().
#pragma once

#include "config.hpp"
#include "status.hpp"
#include "variants.hpp"  // variant_name, variant_from_name

namespace slay {

struct AttrSpec {
    slay_attr_t id;
    const char* name;
    bool is_integer;
    double lo, hi;  // inclusive range
    bool lo_open;   // lo itself excluded (values must be > lo)
};

// Lookups by an enum's int32 bits (core/limits.hpp enum_bits): a value from
// C outside the enum is answered "unknown" without undefined behaviour.
const AttrSpec* find_attr(int32_t id);  // nullptr if unknown

// Value of an attribute stored in a config (integers as exact doubles).
double read_attr(const AttnConfig& c, slay_attr_t id);
void write_attr(AttnConfig& c, slay_attr_t id, double value);

// Checks that `id` exists, has the given type, applies to the variant and
// that value lies in range; then stores it.
Status set_attr_checked(AttnConfig& c, int32_t id, bool as_integer, double value);
Status get_attr_checked(const AttnConfig& c, int32_t id, bool as_integer, double* value);

// A descriptor's raw config -> the plan's resolved config (Dv, softmax
// scale), with cross-attribute checks.
Status resolve_config(const AttnConfig& raw, AttnConfig* resolved);

}  // namespace slay

struct slay_attn_desc_s {
    slay::AttnConfig raw;  // value_dim / softmax_scale 0 = derive
};
