// bench_output.cpp -- JSON and Markdown writing for slay-bench (see the header).
#include "bench_output.hpp"

#include <cmath>
#include <cstdio>

namespace bench {

Record& Record::set(const std::string& key, Value value) {
    for (auto& f : fields)
        if (f.first == key) {
            f.second = std::move(value);
            return *this;
        }
    fields.emplace_back(key, std::move(value));
    return *this;
}

const Value* Record::find(const std::string& key) const {
    for (const auto& f : fields)
        if (f.first == key) return &f.second;
    return nullptr;
}

double Record::num(const std::string& key, double fallback) const {
    const Value* v = find(key);
    if (!v) return fallback;
    if (v->kind == Value::Number) return v->number;
    if (v->kind == Value::Integer) return static_cast<double>(v->integer);
    return fallback;
}

std::string Record::str(const std::string& key) const {
    const Value* v = find(key);
    return v && v->kind == Value::String ? v->string : "";
}

namespace {

void write_string(std::ostream& out, const std::string& s) {
    out << '"';
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out << '\\' << c;
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out << buf;
        } else {
            out << c;
        }
    }
    out << '"';
}

void write_number(std::ostream& out, double x) {
    if (!std::isfinite(x)) {
        out << "null";
        return;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", x);
    out << buf;
}

void write_value(std::ostream& out, const Value& v) {
    switch (v.kind) {
    case Value::Null: out << "null"; break;
    case Value::Number: write_number(out, v.number); break;
    case Value::Integer: out << v.integer; break;
    case Value::String: write_string(out, v.string); break;
    case Value::Boolean: out << (v.boolean ? "true" : "false"); break;
    case Value::Numbers:
        out << '[';
        for (size_t i = 0; i < v.numbers.size(); ++i) {
            if (i) out << ", ";
            write_number(out, v.numbers[i]);
        }
        out << ']';
        break;
    }
}

void write_record(std::ostream& out, const Record& r, const char* indent) {
    out << "{";
    for (size_t i = 0; i < r.fields.size(); ++i) {
        out << (i ? ",\n" : "\n") << indent << "  ";
        write_string(out, r.fields[i].first);
        out << ": ";
        write_value(out, r.fields[i].second);
    }
    out << "\n" << indent << "}";
}

}  // namespace

void write_json(std::ostream& out, const Record& meta, const std::vector<Record>& rows) {
    out << "{\n  \"meta\": ";
    write_record(out, meta, "  ");
    out << ",\n  \"rows\": [";
    for (size_t i = 0; i < rows.size(); ++i) {
        out << (i ? ",\n    " : "\n    ");
        write_record(out, rows[i], "    ");
    }
    out << "\n  ]\n}\n";
}

std::string markdown_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
    std::string s = "|";
    for (const auto& h : header) s += " " + h + " |";
    s += "\n|";
    for (size_t i = 0; i < header.size(); ++i) s += "---|";
    s += "\n";
    for (const auto& row : rows) {
        s += "|";
        for (const auto& cell : row) s += " " + cell + " |";
        s += "\n";
    }
    return s;
}

std::string fixed(double x, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, x);
    return buf;
}

std::string sig3(double x) {
    char buf[64];
    double a = std::fabs(x);
    if (a != 0 && (a < 1e-3 || a >= 1e5))
        std::snprintf(buf, sizeof buf, "%.2e", x);
    else
        std::snprintf(buf, sizeof buf, "%.4g", x);
    return buf;
}

}  // namespace bench
