// The C API of sparsewino.h: read an engine artifact (.swe) and run its programs through
// sw_run_program. The container is described in sparsewino/engine/artifact/container.py: a
// preamble, a JSON header (metadata only, not read here), a table of int64 numbers and 64-byte
// aligned blobs. Each run takes a context (relocated structs, arena, workspace) from a pool.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "sw_kernels.h"

#pragma GCC visibility push(default)
#include "../../native/include/sparsewino.h"
#pragma GCC visibility pop

namespace {

constexpr char kMagic[8] = {'S', 'W', 'E', 'N', 'G', 'I', 'N', 'E'};
constexpr uint32_t kFormatVersion = 1;          // container.FORMAT_VERSION
constexpr size_t kPreamble = 80;
enum Target : int64_t { kArena = 0, kWorkspace = 1, kInput = 2, kOutput = 3, kConstant = 4 };

thread_local int last_kernel_status = 0;

struct AlignedFree {
    void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<unsigned char, AlignedFree>;

Buffer aligned_buffer(size_t bytes) {
    const size_t size = (bytes + 63) / 64 * 64;
    return Buffer(static_cast<unsigned char*>(std::aligned_alloc(64, size ? size : 64)));
}

uint32_t crc32_update(uint32_t crc, const unsigned char* data, size_t size) {
    static uint32_t table[256];
    static std::once_flag once;
    std::call_once(once, [] {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    });
    crc = ~crc;
    for (size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

template <class T>
T read_le(const unsigned char* p) {
    T value;
    std::memcpy(&value, p, sizeof value);      // the format and the supported CPUs are little-endian
    return value;
}

struct Relocation {
    int64_t field, target, index, offset;
};

struct Op {
    int32_t kind;
    std::vector<unsigned char> bytes;           // the struct, pointers zero
    int64_t isa_offset;
    std::vector<Relocation> relocations;
};

struct Program {
    std::vector<int64_t> input_shape, output_shape;
    int64_t arena_bytes, workspace_bytes;
    std::vector<Op> ops;
};

// One runnable copy of a program: relocated structs over its own arena and workspace.
struct Context {
    std::vector<Buffer> structs;
    std::vector<sw_op> ops;
    Buffer arena, workspace;
    std::vector<std::pair<unsigned char*, std::pair<int64_t, int64_t>>> patches;   // field, (target, offset)
};

struct Error {
    int status;
    std::string message;
};

}  // namespace

struct sw_model {
    Buffer file;
    size_t file_size = 0;
    std::vector<std::pair<const unsigned char*, int64_t>> constants;
    std::vector<Program> programs;
    std::string note;
    int32_t isa_override = -1;                  // -1: keep the saved instruction set
    std::mutex mutex;
    std::vector<std::vector<std::unique_ptr<Context>>> free_contexts;   // per program
};

namespace {

class Table {
public:
    Table(const unsigned char* data, size_t size) : data_(data), count_(size / 8) {}
    int64_t next() {
        if (position_ >= count_) throw Error{SW_MODEL_ERR_FORMAT, "the artifact table ends early"};
        return read_le<int64_t>(data_ + 8 * position_++);
    }
    int64_t count() {
        const int64_t value = next();
        if (value < 0 || static_cast<size_t>(value) > count_)
            throw Error{SW_MODEL_ERR_FORMAT, "malformed artifact table"};
        return value;
    }

private:
    const unsigned char* data_;
    size_t count_, position_ = 0;
};

int32_t struct_size(int32_t kind) {
    int32_t count = 0;
    const sw_op_info* table = sw_op_table(&count);
    for (int32_t i = 0; i < count; ++i)
        if (table[i].code == kind) return table[i].struct_size;
    return -1;
}

// Elements of a shape (0 for a negative or overflowing one: nothing fits in it).
int64_t elements(const std::vector<int64_t>& shape) {
    int64_t count = 1;
    for (int64_t d : shape) {
        if (d < 0 || (d > 0 && count > INT64_MAX / 8 / d)) return 0;
        count *= d;
    }
    return count;
}

void parse(sw_model* model, const std::string& path) {
    const unsigned char* data = model->file.get();
    const size_t size = model->file_size;
    if (size < sizeof kMagic || std::memcmp(data, kMagic, sizeof kMagic) != 0)
        throw Error{SW_MODEL_ERR_FORMAT, path + " is not a sparsewino engine artifact (its first "
                    "bytes are not SWENGINE); make one with `sparsewino export`"};
    if (size < kPreamble)
        throw Error{SW_MODEL_ERR_FORMAT, path + " is truncated (shorter than the preamble); "
                    "export it again"};
    const uint32_t version = read_le<uint32_t>(data + 8), abi = read_le<uint32_t>(data + 12);
    uint64_t fields[7];
    for (int i = 0; i < 7; ++i) fields[i] = read_le<uint64_t>(data + 16 + 8 * i);
    const uint64_t table_offset = fields[2], table_size = fields[3];
    const uint64_t blobs_offset = fields[4], blobs_size = fields[5], total = fields[6];
    if (version > kFormatVersion)
        throw Error{SW_MODEL_ERR_VERSION, path + " has artifact format version " +
                    std::to_string(version) + "; this library reads versions up to " +
                    std::to_string(kFormatVersion) + ": upgrade sparsewino"};
    if (size != total)
        throw Error{SW_MODEL_ERR_FORMAT, path + (size < total ? " is truncated (" : " is longer "
                    "than written (") + std::to_string(size) + " bytes, " + std::to_string(total) +
                    " written); copy or export it again"};
    const uint32_t crc = crc32_update(crc32_update(0, data, 72), data + 80, size - 80);
    if (crc != read_le<uint32_t>(data + 72))
        throw Error{SW_MODEL_ERR_FORMAT, path + " fails its checksum: it was modified or "
                    "corrupted after export; export it again"};
    if (abi != SW_ABI_VERSION)
        throw Error{SW_MODEL_ERR_VERSION, path + " was written for kernel ABI version " +
                    std::to_string(abi) + "; this library has version " +
                    std::to_string(SW_ABI_VERSION) + ": export it again with this sparsewino"};
    if (table_offset > size || table_size > size - table_offset || blobs_offset > size ||
        blobs_size > size - blobs_offset || blobs_offset % 64 != 0)
        throw Error{SW_MODEL_ERR_FORMAT, path + ": malformed artifact (sections outside the file)"};
    const unsigned char* blobs = data + blobs_offset;
    auto blob = [&](int64_t offset, int64_t length) {
        if (offset < 0 || length < 0 || static_cast<uint64_t>(offset + length) > blobs_size)
            throw Error{SW_MODEL_ERR_FORMAT, path + ": a blob lies outside the file"};
        return blobs + offset;
    };
    Table table(data + table_offset, table_size);
    for (int64_t c = 0, n = table.count(); c < n; ++c) {
        const int64_t offset = table.next(), length = table.next();
        model->constants.emplace_back(blob(offset, length), length);
    }
    for (int64_t p = 0, n = table.count(); p < n; ++p) {
        Program program;
        for (int64_t d = 0, rank = table.count(); d < rank; ++d)
            program.input_shape.push_back(table.next());
        for (int64_t d = 0, rank = table.count(); d < rank; ++d)
            program.output_shape.push_back(table.next());
        program.arena_bytes = table.next();
        program.workspace_bytes = table.next();
        if (program.arena_bytes < 0 || program.workspace_bytes < 0)
            throw Error{SW_MODEL_ERR_FORMAT, path + ": malformed program sizes"};
        for (int64_t o = 0, ops = table.count(); o < ops; ++o) {
            Op op;
            op.kind = static_cast<int32_t>(table.next());
            const int64_t offset = table.next(), length = table.next();
            op.isa_offset = table.next();
            if (struct_size(op.kind) != length)
                throw Error{SW_MODEL_ERR_VERSION, path + ": operation " + std::to_string(o) +
                            " does not match this library's operations; export it again"};
            const unsigned char* bytes = blob(offset, length);
            op.bytes.assign(bytes, bytes + length);
            if (op.isa_offset > length - 4)
                throw Error{SW_MODEL_ERR_FORMAT, path + ": malformed operation"};
            for (int64_t r = 0, count = table.count(); r < count; ++r) {
                Relocation rel{table.next(), table.next(), table.next(), table.next()};
                const bool field_ok = rel.field >= 0 && rel.field <= length - 8;
                int64_t extent = -1;
                if (rel.target == kArena) extent = program.arena_bytes;
                if (rel.target == kWorkspace) extent = program.workspace_bytes;
                if (rel.target == kConstant && rel.index >= 0 &&
                    rel.index < static_cast<int64_t>(model->constants.size()))
                    extent = model->constants[rel.index].second;
                if (rel.target == kInput) extent = 4 * elements(program.input_shape);
                if (rel.target == kOutput) extent = 4 * elements(program.output_shape);
                if (!field_ok || rel.offset < 0 || rel.offset >= extent)
                    throw Error{SW_MODEL_ERR_FORMAT, path + ": operation " + std::to_string(o) +
                                " has a bad relocation"};
                op.relocations.push_back(rel);
            }
            // The saved instruction set: kept if this CPU runs it, else the best it has.
            if (op.isa_offset >= 0) {
                const int32_t isa = read_le<int32_t>(op.bytes.data() + op.isa_offset);
                if (isa != SW_ISA_AUTO && !sw_isa_supported(isa) && model->isa_override < 0) {
                    model->isa_override = SW_ISA_AUTO;
                    model->note = "planned for instruction set " + std::to_string(isa) +
                                  ", which this CPU or library lacks: runs on the best one it has";
                }
            }
            program.ops.push_back(std::move(op));
        }
        model->programs.push_back(std::move(program));
    }
    if (model->programs.empty())
        throw Error{SW_MODEL_ERR_FORMAT, path + ": the artifact holds no program"};
    model->free_contexts.resize(model->programs.size());
}

std::unique_ptr<Context> make_context(const sw_model* model, const Program& program) {
    auto context = std::make_unique<Context>();
    context->arena = aligned_buffer(static_cast<size_t>(program.arena_bytes));
    context->workspace = aligned_buffer(static_cast<size_t>(program.workspace_bytes));
    if (!context->arena || !context->workspace) return nullptr;
    for (const Op& op : program.ops) {
        Buffer bytes = aligned_buffer(op.bytes.size());
        if (!bytes) return nullptr;
        unsigned char* s = bytes.get();
        std::memcpy(s, op.bytes.data(), op.bytes.size());
        if (op.isa_offset >= 0 && model->isa_override >= 0)
            std::memcpy(s + op.isa_offset, &model->isa_override, sizeof(int32_t));
        for (const Relocation& rel : op.relocations) {
            const unsigned char* base = nullptr;
            if (rel.target == kArena) base = context->arena.get();
            if (rel.target == kWorkspace) base = context->workspace.get();
            if (rel.target == kConstant) base = model->constants[rel.index].first;
            if (rel.target == kInput || rel.target == kOutput) {
                context->patches.push_back({s + rel.field, {rel.target, rel.offset}});
                continue;
            }
            const uintptr_t address = reinterpret_cast<uintptr_t>(base) + rel.offset;
            std::memcpy(s + rel.field, &address, sizeof address);
        }
        context->ops.push_back(sw_op{op.kind, s});
        context->structs.push_back(std::move(bytes));
    }
    return context;
}

void set_error(char* error, size_t error_size, const std::string& message) {
    if (error && error_size) std::snprintf(error, error_size, "%s", message.c_str());
}

int copy_shape(const std::vector<int64_t>& shape, int64_t* dims, int max_rank) {
    if (!dims && max_rank > 0) return SW_MODEL_ERR_ARGS;
    for (int i = 0; i < max_rank && i < static_cast<int>(shape.size()); ++i) dims[i] = shape[i];
    return static_cast<int>(shape.size());
}

}  // namespace

extern "C" {

int sw_model_load(const char* path, sw_model** model, char* error, size_t error_size) {
    if (!model || !path) {
        set_error(error, error_size, "sw_model_load: path and model must not be NULL");
        return SW_MODEL_ERR_ARGS;
    }
    *model = nullptr;
    std::FILE* handle = std::fopen(path, "rb");
    if (!handle) {
        set_error(error, error_size, std::string(path) + ": cannot open the artifact file (" +
                  std::strerror(errno) + ")");
        return SW_MODEL_ERR_IO;
    }
    auto loaded = std::unique_ptr<sw_model>(new (std::nothrow) sw_model);
    long size = -1;
    if (loaded && std::fseek(handle, 0, SEEK_END) == 0) size = std::ftell(handle);
    if (!loaded || size < 0 || std::fseek(handle, 0, SEEK_SET) != 0) {
        std::fclose(handle);
        set_error(error, error_size, std::string(path) + ": cannot read the artifact file");
        return loaded ? SW_MODEL_ERR_IO : SW_MODEL_ERR_MEMORY;
    }
    loaded->file = aligned_buffer(static_cast<size_t>(size));
    loaded->file_size = static_cast<size_t>(size);
    const bool read = loaded->file &&
        std::fread(loaded->file.get(), 1, loaded->file_size, handle) == loaded->file_size;
    std::fclose(handle);
    if (!read) {
        set_error(error, error_size, std::string(path) + ": cannot read the artifact file");
        return loaded->file ? SW_MODEL_ERR_IO : SW_MODEL_ERR_MEMORY;
    }
    try {
        parse(loaded.get(), path);
    } catch (const Error& e) {
        set_error(error, error_size, e.message);
        return e.status;
    } catch (const std::bad_alloc&) {
        set_error(error, error_size, std::string(path) + ": out of memory");
        return SW_MODEL_ERR_MEMORY;
    }
    *model = loaded.release();
    return SW_MODEL_OK;
}

void sw_model_free(sw_model* model) { delete model; }

int sw_model_shape_count(const sw_model* model) {
    return model ? static_cast<int>(model->programs.size()) : SW_MODEL_ERR_ARGS;
}

int sw_model_input_shape(const sw_model* model, int index, int64_t* dims, int max_rank) {
    if (!model || index < 0 || index >= static_cast<int>(model->programs.size()))
        return SW_MODEL_ERR_ARGS;
    return copy_shape(model->programs[index].input_shape, dims, max_rank);
}

int sw_model_output_shape(const sw_model* model, int index, int64_t* dims, int max_rank) {
    if (!model || index < 0 || index >= static_cast<int>(model->programs.size()))
        return SW_MODEL_ERR_ARGS;
    return copy_shape(model->programs[index].output_shape, dims, max_rank);
}

int sw_model_run_shape(sw_model* model, int index, const float* input, float* output) {
    if (!model || !input || !output || index < 0 ||
        index >= static_cast<int>(model->programs.size()))
        return SW_MODEL_ERR_ARGS;
    std::unique_ptr<Context> context;
    try {
        {
            std::lock_guard<std::mutex> lock(model->mutex);
            auto& pool = model->free_contexts[index];
            if (!pool.empty()) {
                context = std::move(pool.back());
                pool.pop_back();
            }
        }
        if (!context) context = make_context(model, model->programs[index]);
    } catch (const std::bad_alloc&) {
        context.reset();
    }
    if (!context) return SW_MODEL_ERR_MEMORY;
    for (auto& patch : context->patches) {
        const uintptr_t base = patch.second.first == kInput ? reinterpret_cast<uintptr_t>(input)
                                                            : reinterpret_cast<uintptr_t>(output);
        const uintptr_t address = base + patch.second.second;
        std::memcpy(patch.first, &address, sizeof address);
    }
    const int32_t status = sw_run_program(context->ops.data(),
                                          static_cast<int32_t>(context->ops.size()), nullptr);
    last_kernel_status = status;
    {
        std::lock_guard<std::mutex> lock(model->mutex);
        model->free_contexts[index].push_back(std::move(context));
    }
    return status == SW_OK ? SW_MODEL_OK : SW_MODEL_ERR_KERNEL;
}

int sw_model_run(sw_model* model, const float* input, float* output) {
    return sw_model_run_shape(model, 0, input, output);
}

const char* sw_model_note(const sw_model* model) { return model ? model->note.c_str() : ""; }

int sw_model_last_kernel_status(void) { return last_kernel_status; }

const char* sw_model_strerror(int status) {
    switch (status) {
        case SW_MODEL_OK: return "success";
        case SW_MODEL_ERR_IO: return "the artifact file cannot be opened or read";
        case SW_MODEL_ERR_FORMAT:
            return "not a valid artifact (foreign, truncated, modified or malformed file)";
        case SW_MODEL_ERR_VERSION:
            return "the artifact was written by another sparsewino (format or kernel ABI "
                   "version): export it again";
        case SW_MODEL_ERR_ARGS: return "invalid arguments (a null pointer or a bad shape index)";
        case SW_MODEL_ERR_MEMORY: return "out of memory";
        case SW_MODEL_ERR_KERNEL: return "a kernel operation failed";
        default: return "unknown status";
    }
}

}  // extern "C"
