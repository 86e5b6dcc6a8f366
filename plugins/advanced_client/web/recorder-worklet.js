// Audio worklet: hands the microphone's samples (mono, the context's rate) to the page.
// A worklet, not a ScriptProcessorNode: the latter is deprecated and runs on the main thread.
class RecorderProcessor extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input[0]) this.port.postMessage(input[0].slice(0));
    return true;
  }
}
registerProcessor("plexichat-recorder", RecorderProcessor);
