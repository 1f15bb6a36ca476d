import NIOCore
import ProxCore
#if canImport(Glibc)
import Glibc
#endif

/// One JSON line per request, buffered per event loop and written in batches (when 32 KiB have
/// gathered, and on every timeout sweep, so a line is out within ~250 ms).
final class AccessLog {
    /// Where lines go: a file descriptor (stdout is 1), or -1 when off.
    let fd: Int32
    private var buffer: ByteBuffer

    init(fd: Int32) {
        self.fd = fd
        self.buffer = ByteBufferAllocator().buffer(capacity: fd >= 0 ? 64 * 1024 : 0)
    }

    var enabled: Bool { fd >= 0 }

    struct Entry {
        var requestID: String
        var client: String
        /// nil (written as null) when not known: a request refused before its head was read.
        var method: String?
        var host: String?
        var path: String?
        var route: String
        var pool: String
        var endpoint: String
        var status: Int
        var bytesIn: Int64
        var bytesOut: Int64
        var durationMicros: Int64
        var upstreamMicros: Int64
        var error: String
        /// Request header lines the framer dropped (`RequestHead.droppedHeaders`); written only
        /// when nonzero.
        var droppedHeaders = 0
        /// `websocket` for a tunnel's line (written when the tunnel closes); empty otherwise.
        var upgrade = ""
        /// A live trace (`server.trace`), as JSON; nil for every untraced request.
        var trace: String? = nil
    }

    func write(_ e: Entry) {
        guard fd >= 0 else { return }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        buffer.writeStaticString("{\"time\":")
        buffer.writeString(String(ts.tv_sec))
        buffer.writeStaticString(".")
        let ms = Int(ts.tv_nsec / 1_000_000)
        buffer.writeString(ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)")
        field("request_id", e.requestID)
        field("client", e.client)
        optionalField("method", e.method)
        optionalField("host", e.host)
        optionalField("path", e.path)
        field("route", e.route)
        field("pool", e.pool)
        field("endpoint", e.endpoint)
        buffer.writeStaticString(",\"status\":")
        buffer.writeString(String(e.status))
        buffer.writeStaticString(",\"bytes_in\":")
        buffer.writeString(String(e.bytesIn))
        buffer.writeStaticString(",\"bytes_out\":")
        buffer.writeString(String(e.bytesOut))
        buffer.writeStaticString(",\"duration_ms\":")
        buffer.writeString(millis(e.durationMicros))
        buffer.writeStaticString(",\"upstream_ms\":")
        buffer.writeString(e.upstreamMicros >= 0 ? millis(e.upstreamMicros) : "null")
        if !e.error.isEmpty { field("error", e.error) }
        if !e.upgrade.isEmpty { field("upgrade", e.upgrade) }
        if e.droppedHeaders > 0 {
            buffer.writeStaticString(",\"dropped_headers\":")
            buffer.writeString(String(e.droppedHeaders))
        }
        if let t = e.trace {
            buffer.writeStaticString(",\"trace\":")
            buffer.writeString(t)
        }
        buffer.writeStaticString("}\n")
        if buffer.readableBytes >= 32 * 1024 { flush() }
    }

    private func millis(_ us: Int64) -> String {
        let frac = us % 1000
        return "\(us / 1000)." + (frac < 10 ? "00\(frac)" : frac < 100 ? "0\(frac)" : "\(frac)")
    }

    private func field(_ name: StaticString, _ value: String) {
        buffer.writeStaticString(",\"")
        buffer.writeStaticString(name)
        buffer.writeStaticString("\":\"")
        writeEscaped(value)
        buffer.writeStaticString("\"")
    }

    private func optionalField(_ name: StaticString, _ value: String?) {
        if let value { return field(name, value) }
        buffer.writeStaticString(",\"")
        buffer.writeStaticString(name)
        buffer.writeStaticString("\":null")
    }

    private func writeEscaped(_ s: String) {
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case 0..<0x20, 0x7f:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                buffer.writeStaticString("\\u00")
                buffer.writeInteger(hex[Int(b >> 4)])
                buffer.writeInteger(hex[Int(b & 0xf)])
            default: buffer.writeInteger(b)
            }
        }
    }

    func flush() {
        guard fd >= 0, buffer.readableBytes > 0 else { return }
        buffer.withUnsafeReadableBytes { p in
            var off = 0
            while off < p.count {
                let n = Glibc.write(fd, p.baseAddress! + off, p.count - off)
                if n <= 0 { if errno == EINTR { continue }; break }
                off += n
            }
        }
        buffer.clear()
    }
}
