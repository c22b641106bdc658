import LedgerCrypto
import NIOCore

/// One direction of an established session: XChaCha20-Poly1305 under a session key, with a
/// 64-bit frame counter as nonce. Sender and receiver count the same frames, so a replayed,
/// dropped, reordered or truncated frame fails authentication.
struct FrameCipher {
    private let key: SecretBytes
    private(set) var counter: UInt64 = 0

    init(key: SecretBytes) {
        precondition(key.count == XChaCha20Poly1305.keyByteCount)
        self.key = key
    }

    /// nonce = 16 zero bytes ‖ counter (u64 big-endian).
    static func nonce(_ counter: UInt64) -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: XChaCha20Poly1305.nonceByteCount)
        for i in 0..<8 { nonce[16 + i] = UInt8((counter >> UInt64(56 - 8 * i)) & 0xFF) }
        return nonce
    }

    /// A whole frame: length prefix ‖ XChaCha20-Poly1305(kind ‖ payload), the prefix as associated data.
    mutating func seal(kind: Wire.FrameKind, payload: [UInt8], allocator: ByteBufferAllocator) throws -> ByteBuffer {
        guard counter < UInt64.max else { throw P2PError(.malformedFrame, "frame counter exhausted") }
        let ciphertextLength = payload.count + Wire.frameOverheadBytes
        let prefix = Wire.lengthPrefix(ciphertextLength)
        var plaintext = [UInt8]()
        plaintext.reserveCapacity(payload.count + 1)
        plaintext.append(kind.rawValue)
        plaintext.append(contentsOf: payload)
        var buffer = allocator.buffer(capacity: Wire.lengthPrefixBytes + ciphertextLength)
        buffer.writeBytes(prefix)
        let nonce = Self.nonce(counter)
        try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: ciphertextLength) { out in
            try plaintext.withUnsafeBytes { p in
                try XChaCha20Poly1305.seal(p, key: key, nonce: nonce, associatedData: prefix,
                                           into: UnsafeMutableRawBufferPointer(rebasing: out.prefix(ciphertextLength)))
            }
            return ciphertextLength
        }
        counter += 1
        return buffer
    }

    /// Opens one frame body (the bytes after its length prefix). Fails closed: any error ends the session.
    mutating func open(_ body: ByteBuffer) throws(P2PError) -> (kind: Wire.FrameKind, payload: [UInt8]) {
        guard counter < UInt64.max else { throw P2PError(.malformedFrame, "frame counter exhausted") }
        let length = body.readableBytes
        guard length >= Wire.frameOverheadBytes else {
            throw P2PError(.malformedFrame, "frame of \(length) bytes is shorter than its \(Wire.frameOverheadBytes)-byte overhead")
        }
        let prefix = Wire.lengthPrefix(length)
        let nonce = Self.nonce(counter)
        let key = self.key
        var plaintext = [UInt8](repeating: 0, count: length - XChaCha20Poly1305.tagByteCount)
        let opened: Bool = body.withUnsafeReadableBytes { c in
            plaintext.withUnsafeMutableBytes { out in
                (try? XChaCha20Poly1305.open(c, key: key, nonce: nonce, associatedData: prefix, into: out)) != nil
            }
        }
        guard opened else {
            throw P2PError(.authenticationFailed, "frame \(counter) failed authentication (corrupted, replayed or reordered)")
        }
        counter += 1
        guard let kind = Wire.FrameKind(rawValue: plaintext[0]) else {
            throw P2PError(.malformedFrame, "frame \(counter - 1) has unknown kind \(plaintext[0])")
        }
        return (kind, Array(plaintext.dropFirst()))
    }
}

/// Splits a byte stream into length-prefixed bodies. Stateless: the stream position is the
/// buffer's reader index, so it can be fed any split of the input.
enum Framing {
    /// The next complete body, or nil when more bytes are needed. Throws as soon as the length
    /// prefix is outside `lengths`, before any of the body is buffered.
    static func nextBody(in buffer: inout ByteBuffer, lengths: ClosedRange<Int>, what: String) throws(P2PError) -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else { return nil }
        guard lengths.contains(Int(length)) else {
            if Int(length) > lengths.upperBound {
                // "HTTP" read as a length: the address is a node's HTTP listener, not its P2P one.
                let http = length == 0x4854_5450 ? " (the bytes are \"HTTP\": this address answers HTTP; give the peer's p2p address)" : ""
                throw P2PError(.frameTooLarge, "\(what) of \(length) bytes exceeds the limit of \(lengths.upperBound)\(http)")
            }
            throw P2PError(.malformedFrame, "\(what) of \(length) bytes is below the minimum of \(lengths.lowerBound)")
        }
        guard buffer.readableBytes >= Wire.lengthPrefixBytes + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: Wire.lengthPrefixBytes)
        return buffer.readSlice(length: Int(length))
    }
}
