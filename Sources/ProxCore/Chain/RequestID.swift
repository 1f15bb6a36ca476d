#if canImport(Glibc)
import Glibc
#endif

/// Request ids: 128 bits from a per-thread generator seeded from the OS, as 32 hex digits.
/// Fast (no syscall, no lock per id) and unique enough to correlate logs across services.
public enum RequestID {
    public static func generate() -> String {
        let g = Generator.current
        let a = g.next(), b = g.next()
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { buf in
            let hex: StaticString = "0123456789abcdef"
            hex.withUTF8Buffer { h in
                for i in 0..<16 {
                    buf[i] = h[Int(a >> UInt64(60 - 4 * i) & 0xf)]
                    buf[16 + i] = h[Int(b >> UInt64(60 - 4 * i) & 0xf)]
                }
            }
            return String(decoding: UnsafeBufferPointer(buf), as: UTF8.self)
        }
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
