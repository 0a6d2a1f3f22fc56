    /// Lesion probability per pixel of the model's input frame (inputWidth x inputHeight, row-major).
    struct Mask {
        let width: Int
        let height: Int
        let probability: [Float]

        func isLesion(x: Int, y: Int) -> Bool { probability[y * width + x] > EdgeDermSpec.threshold }

        /// Lesion pixels in translucent red (a display choice, not a model number), the rest clear,
        /// in the model's input frame (`segment` says where that frame lies on the photo).
        func overlay() -> CGImage? {
            var rgba = [UInt8](repeating: 0, count: width * height * 4)
            for i in 0..<(width * height) where probability[i] > EdgeDermSpec.threshold {
                rgba[i * 4] = 110; rgba[i * 4 + 3] = 110  // premultiplied red at alpha 110/255
            }
            guard let provider = CGDataProvider(data: Data(rgba) as CFData) else { return nil }
            return CGImage(width: width, height: height, bitsPerComponent: 8, bitsPerPixel: 32, bytesPerRow: width * 4,
                           space: CGColorSpaceCreateDeviceRGB(),
                           bitmapInfo: CGBitmapInfo(rawValue: CGImageAlphaInfo.premultipliedLast.rawValue),
                           provider: provider, decode: nil, shouldInterpolate: false, intent: .defaultIntent)
        }
    }
