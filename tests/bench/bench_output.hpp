// bench_output.hpp -- slay-bench's records and how they are written: one
// JSON document {"meta": {...}, "rows": [{...}, ...]} with every raw number,
// and Markdown tables (a header plus string cells).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace bench {

// A JSON scalar or list of numbers. Non-finite numbers are written as null.
struct Value {
    enum Kind { Null, Number, Integer, String, Boolean, Numbers } kind = Null;
    double number = 0;
    int64_t integer = 0;
    std::string string;
    bool boolean = false;
    std::vector<double> numbers;

    Value() = default;
    Value(double x) : kind(Number), number(x) {}
    Value(int64_t x) : kind(Integer), integer(x) {}
    Value(int x) : kind(Integer), integer(x) {}
    Value(uint64_t x) : kind(Integer), integer(static_cast<int64_t>(x)) {}
    Value(const char* x) : kind(String), string(x) {}
    Value(std::string x) : kind(String), string(std::move(x)) {}
    Value(bool x) : kind(Boolean), boolean(x) {}
    Value(std::vector<double> x) : kind(Numbers), numbers(std::move(x)) {}
};

// An ordered JSON object.
struct Record {
    std::vector<std::pair<std::string, Value>> fields;
    Record& set(const std::string& key, Value value);
    const Value* find(const std::string& key) const;
    double num(const std::string& key, double fallback = 0) const;  // Number or Integer
    std::string str(const std::string& key) const;                   // String ("" otherwise)
};

void write_json(std::ostream& out, const Record& meta, const std::vector<Record>& rows);

// A Markdown table: "| a | b |", "|---|---|", rows.
std::string markdown_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

// Fixed-point with `digits` decimals ("12.35").
std::string fixed(double x, int digits);
// Three significant digits in plain or scientific notation ("0.527", "2.2e+06").
std::string sig3(double x);

}  // namespace bench
