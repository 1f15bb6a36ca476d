import NIOCore
import ProxCore

/// Writes a whole head into one reserved region of a `ByteBuffer` with `memcpy`s.
///
/// Measured (callgrind): writing a proxied request head piece by piece with `ByteBuffer.write*`
/// cost ~12.5k instructions per request, mostly NIO's per-call bounds and exclusivity checks
/// (~47 calls). One `writeWithUnsafeMutableBytes` with an upper bound on the size does the same
/// work for a fraction.
@usableFromInline
struct HeadAssembler {
    @usableFromInline var p: UnsafeMutableRawPointer
    @usableFromInline var i = 0

    @inlinable init(_ p: UnsafeMutableRawPointer) { self.p = p }

    @inlinable @inline(__always)
    mutating func put(_ b: UnsafeRawBufferPointer) {
        guard let base = b.baseAddress, b.count > 0 else { return }
        (p + i).copyMemory(from: base, byteCount: b.count)
        i += b.count
    }

    @inlinable @inline(__always)
    mutating func put(_ s: StaticString) {
        (p + i).copyMemory(from: s.utf8Start, byteCount: s.utf8CodeUnitCount)
        i += s.utf8CodeUnitCount
    }

    @inlinable @inline(__always)
    mutating func put(byte b: UInt8) {
        p.storeBytes(of: b, toByteOffset: i, as: UInt8.self)
        i += 1
    }

    /// A string Prox made; CR, LF and NUL become SP so a value can never split the head.
    @inlinable
    mutating func putValue(_ s: String) {
        let start = i
        if let done: Void = s.utf8.withContiguousStorageIfAvailable({ put(UnsafeRawBufferPointer($0)) }) {
            _ = done
        } else {
            for b in s.utf8 { put(byte: b) }
        }
        var j = start
        while j < i {
            let b = p.load(fromByteOffset: j, as: UInt8.self)
            if b == 0x0D || b == 0x0A || b == 0 { p.storeBytes(of: h1SP, toByteOffset: j, as: UInt8.self) }
            j += 1
        }
    }

    /// A name Prox checked (a token).
    @inlinable
    mutating func putName(_ n: HeaderName) {
        if let done: Void = n.name.utf8.withContiguousStorageIfAvailable({ put(UnsafeRawBufferPointer($0)) }) {
            _ = done
        } else {
            for b in n.name.utf8 { put(byte: b) }
        }
    }

    /// `s` with every byte `safe` rejects percent-encoded (needs up to 3x its length).
    @inlinable
    mutating func putEscaped(_ s: String, safe: (UInt8) -> Bool) {
        let hex: StaticString = "0123456789ABCDEF"
        for b in s.utf8 {
            if safe(b) {
                put(byte: b)
            } else {
                put(byte: UInt8(ascii: "%"))
                put(byte: hex.utf8Start[Int(b >> 4)])
                put(byte: hex.utf8Start[Int(b & 0xF)])
            }
        }
    }

    @inlinable
    mutating func putDecimal(_ n: Int64) {
        var v = UInt64(max(0, n))
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &tmp) { d in
            var k = d.count
            repeat {
                k -= 1
                d[k] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            } while v > 0
            put(UnsafeRawBufferPointer(rebasing: d[k...]))
        }
    }

    @inlinable
    mutating func putFraming(_ framing: BodyFraming) {
        switch framing {
        case .contentLength(let n):
            put("Content-Length: ")
            putDecimal(n)
            put("\r\n")
        case .chunked:
            put("Transfer-Encoding: chunked\r\n")
        case .none, .untilClose:
            break
        }
    }

    /// The effective lines of `fields` (see `HTTP1Writer.writeFields`).
    @inlinable
    mutating func putFields(_ fields: HeaderFields, skipHost: Bool) {
        fields.bytes.withUnsafeReadableBytes { all in
            let count = all.count
            var runStart = 0
            var runEnd = 0
            for s in fields.slots {
                if s.removed { continue }
                let ns = Int(s.nameStart)
                let nl = Int(s.nameLength)
                if skipHost && nl == 4 && HeaderName.host.matches(UnsafeRawBufferPointer(rebasing: all[ns..<(ns + 4)])) {
                    continue
                }
                let vs = Int(s.valueStart)
                let ve = vs + Int(s.valueLength)
                // A line laid out as `Name: value\r\n` is copied whole, with its neighbours.
                if vs == ns + nl + 2 && ve + 2 <= count && all[ns + nl] == 0x3A && all[ns + nl + 1] == 0x20
                    && all[ve] == 0x0D && all[ve + 1] == 0x0A {
                    if runEnd == ns && runEnd > runStart {
                        runEnd = ve + 2
                    } else {
                        if runEnd > runStart { put(UnsafeRawBufferPointer(rebasing: all[runStart..<runEnd])) }
                        runStart = ns
                        runEnd = ve + 2
                    }
                } else {
                    if runEnd > runStart { put(UnsafeRawBufferPointer(rebasing: all[runStart..<runEnd])) }
                    runStart = 0
                    runEnd = 0
                    put(UnsafeRawBufferPointer(rebasing: all[ns..<(ns + nl)]))
                    put(": ")
                    put(UnsafeRawBufferPointer(rebasing: all[vs..<ve]))
                    put("\r\n")
                }
            }
            if runEnd > runStart { put(UnsafeRawBufferPointer(rebasing: all[runStart..<runEnd])) }
        }
        if fields.addedByteCount > 0 {
            // Added lines are serialized already: one copy, unless a stage added a name the
            // writer owns (framing, or Host, which the request writer puts first).
            let skip = HeaderName.framingBits | (skipHost ? HeaderName.Bit.host : 0)
            if fields.addedKnown & skip == 0 {
                fields.withAddedBytes { put($0) }
            } else {
                fields.forEachAdded { name, _, line in
                    if HeaderName.knownBit(ofLowercasedOrNot: name) & skip == 0 { put(line) }
                    return true
                }
            }
        }
    }

    /// An upper bound on what `putFields` writes.
    @inlinable
    static func fieldsBound(_ fields: HeaderFields) -> Int {
        fields.bytes.readableBytes + 4 * fields.slots.count + fields.addedByteCount
    }
}
