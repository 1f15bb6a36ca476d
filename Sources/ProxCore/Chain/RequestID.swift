#if canImport(Glibc)
import Glibc
#endif

/// Request ids: 128 bits from a per-thread generator seeded from the OS, as 32 hex digits.
/// Fast (no syscall, no lock per id) and unique enough to correlate logs across services.
public enum RequestID {
    public static func generate() -> String { Generated.next().text }

    /// A generated id: its 128 bits, kept as the 32 hex digits they show as (written once, lent
    /// to every header line that carries the id). Kept as bytes, not a `String`, so that a
    /// request whose id only goes into header lines makes none (a String of 32 bytes is a heap
    /// allocation and a free, about 600 instructions a request, callgrind).
    public struct Generated: Sendable, Equatable, CustomStringConvertible {
        @usableFromInline let digits: (UInt64, UInt64, UInt64, UInt64)

        public init(high: UInt64, low: UInt64) {
            digits = (RequestID.hexDigits(UInt32(truncatingIfNeeded: high >> 32)), RequestID.hexDigits(UInt32(truncatingIfNeeded: high)),
                      RequestID.hexDigits(UInt32(truncatingIfNeeded: low >> 32)), RequestID.hexDigits(UInt32(truncatingIfNeeded: low)))
        }

        /// The next id from the calling thread's generator.
        public static func next() -> Generated {
            // Borrowed, not retained: the thread's slot keeps the generator alive.
            if let p = pthread_getspecific(Generator.key) {
                return Unmanaged<Generator>.fromOpaque(p)._withUnsafeGuaranteedRef { Generated(high: $0.next(), low: $0.next()) }
            }
            let g = Generator.current
            return Generated(high: g.next(), low: g.next())
        }

        /// Lends the 32 digits.
        @inlinable
        public func withDigits<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            var words = digits
            return try withUnsafeBytes(of: &words) { try body($0) }
        }

        public static func == (a: Generated, b: Generated) -> Bool { a.digits == b.digits }

        /// The 32 digits as a string (an allocation: for logs, templates and traces).
        public var text: String {
            String(unsafeUninitializedCapacity: 32) { buf in
                withDigits { UnsafeMutableRawBufferPointer(buf).copyMemory(from: $0) }
                return 32
            }
        }

        public var description: String { text }
    }

    /// The 8 lowercase hex digits of `v`, most significant first, as the bytes of a word in
    /// memory order. All eight at once: each nibble is spread into a byte of its own, then
    /// `'0'` is added to every byte, and `'a' - '0' - 10` more to those of 10 and above. A digit
    /// at a time from a table cost about 300 instructions an id (callgrind).
    @inline(__always)
    static func hexDigits(_ v: UInt32) -> UInt64 {
        var x = UInt64(v)
        x = (x | x << 16) & 0x0000_FFFF_0000_FFFF
        x = (x | x << 8) & 0x00FF_00FF_00FF_00FF
        x = (x | x << 4) & 0x0F0F_0F0F_0F0F_0F0F
        // The most significant nibble is now the word's most significant byte: memory order
        // (little-endian) wants it first.
        x = x.byteSwapped
        let tens = ((x &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        let ascii = x &+ 0x3030_3030_3030_3030 &+ tens &* 0x27
        return UInt64(littleEndian: ascii)
    }

    /// True when `id` is acceptable to keep from a client: 1-128 visible ASCII characters
    /// without quotes, commas or backslashes (it goes into logs and headers).
    public static func isValid(_ id: String) -> Bool {
        let u = id.utf8
        guard !u.isEmpty && u.count <= 128 else { return false }
        return u.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: ",") && $0 != UInt8(ascii: "\\") }
    }

    final class Generator {
        var rng: SplitMix64
        init() {
            var os = SystemRandomNumberGenerator()
            rng = SplitMix64(seed: os.next())
        }
        func next() -> UInt64 { rng.next() }

        static let key: pthread_key_t = {
            var k = pthread_key_t()
            pthread_key_create(&k) { ptr in
                if let ptr { Unmanaged<Generator>.fromOpaque(ptr).release() }
            }
            return k
        }()

        static var current: Generator {
            if let p = pthread_getspecific(key) { return Unmanaged<Generator>.fromOpaque(p).takeUnretainedValue() }
            let g = Generator()
            pthread_setspecific(key, Unmanaged.passRetained(g).toOpaque())
            return g
        }
    }
}

/// The calling thread's generator (the one request ids come from): on an event loop, that loop's
/// own. For draws on the hot path (traffic splits): no lock, no syscall, no allocation.
public enum ThreadRandom {
    public static func next() -> UInt64 {
        // Borrowed, not retained: the thread's slot keeps the generator alive.
        if let p = pthread_getspecific(RequestID.Generator.key) {
            return Unmanaged<RequestID.Generator>.fromOpaque(p)._withUnsafeGuaranteedRef { $0.next() }
        }
        return RequestID.Generator.current.next()
    }
}
