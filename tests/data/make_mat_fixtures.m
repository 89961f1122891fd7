% Writes the small MatConvNet-style .mat fixtures of tests/test_weights_io_mat.py
% with GNU Octave, independently of scipy:  cd tests/data && octave --no-gui make_mat_fixtures.m
% Every array is a formula of its size, so the tests recompute it with numpy
% (column-major, order='F') and need not trust the reader they check.
1;
function A = wave(sz, phase)
  % sin of 1..numel in MATLAB's column-major order, scaled to keep activations tame.
  A = single(0.5 * sin((1:prod(sz)) + phase));
  A = reshape(A, sz);
end

function L = conv_layer(name, sz, phase, pad)
  L = struct('type', 'conv', 'name', name, 'weights', {{wave(sz, phase), wave([1 sz(4)], phase + 100)}}, ...
             'stride', [1 1], 'pad', pad * [1 1 1 1]);
end

% ---- tiny VGG-style SimpleNN: 8x8x3 -> conv1_1 3x3x3x4 -> pool -> conv2_1 3x3x4x6 -> pool
%      -> fc6 2x2x6x5 -> fc7 1x1x5x5 -> fc8 1x1x5x3 -> softmax
layers = {};
layers{end+1} = conv_layer('conv1_1', [3 3 3 4], 1, 1);
layers{end+1} = struct('type', 'relu', 'name', 'relu1_1');
layers{end+1} = struct('type', 'pool', 'name', 'pool1', 'method', 'max', 'pool', [2 2], 'stride', [2 2], 'pad', [0 0 0 0]);
layers{end+1} = conv_layer('conv2_1', [3 3 4 6], 2, 1);
layers{end+1} = struct('type', 'relu', 'name', 'relu2_1');
layers{end+1} = struct('type', 'pool', 'name', 'pool2', 'method', 'max', 'pool', [2 2], 'stride', [2 2], 'pad', [0 0 0 0]);
layers{end+1} = conv_layer('fc6', [2 2 6 5], 3, 0);
layers{end+1} = struct('type', 'relu', 'name', 'relu6');
layers{end+1} = conv_layer('fc7', [1 1 5 5], 4, 0);
layers{end+1} = struct('type', 'relu', 'name', 'relu7');
layers{end+1} = conv_layer('fc8', [1 1 5 3], 5, 0);
layers{end+1} = struct('type', 'softmax', 'name', 'prob');
% the bias of conv1_1 as a column (K,1), as some exporters write it
layers{1}.weights{2} = layers{1}.weights{2}';

% old SimpleNN: top-level layers / classes / normalization (MATLAB v5 file)
classes = struct('name', {{'n01', 'n02', 'n03'}}, 'description', {{'cat', 'dog', 'fox'}});
normalization = struct('averageImage', single([123.68 116.779 103.939]), 'imageSize', [8 8 3]);
save('-v6', 'simplenn_old_v5.mat', 'layers', 'classes', 'normalization');

% newer SimpleNN: layers + meta, wrapped in `net` as training scripts save it (v7, compressed)
net = struct();
net.layers = layers;
net.meta = struct('normalization', normalization, 'classes', classes);
save('-v7', 'simplenn_net_v7.mat', 'net');

% ---- orientation: one 3x3x1x1 conv (MATLAB keeps it 3x3: both singletons dropped),
%      an asymmetric kernel; rows are the first (H) axis
net = struct();
net.layers = {struct('type', 'conv', 'name', 'conv1', 'weights', {{single([1 2 3; 4 5 6; 7 8 9]), single(0)}}, ...
                     'stride', [1 1], 'pad', [1 1 1 1])};
save('-v6', 'impulse_v5.mat', '-struct', 'net');

% ---- DagNN: conv1 (3x3x2x4) -> bn1 -> relu1 -> fc (4x4x4x3); params resolved by name
dag = struct();
dag.layers = struct('name', {'conv1', 'bn1', 'relu1', 'fc'}, ...
                    'type', {'dagnn.Conv', 'dagnn.BatchNorm', 'dagnn.ReLU', 'dagnn.Conv'}, ...
                    'inputs', {{'input'}, {'x1'}, {'x2'}, {'x3'}}, ...
                    'outputs', {{'x1'}, {'x2'}, {'x3'}, {'prediction'}}, ...
                    'params', {{'conv1_f', 'conv1_b'}, {'bn1_m', 'bn1_b', 'bn1_x'}, {}, {'fc_f', 'fc_b'}}, ...
                    'block', {struct('size', [3 3 2 4], 'hasBias', true, 'pad', [1 1 1 1], 'stride', [1 1]), ...
                              struct('numChannels', 4, 'epsilon', 1e-4), struct('leak', 0), ...
                              struct('size', [4 4 4 3], 'hasBias', true, 'pad', [0 0 0 0], 'stride', [1 1])});
moments = [wave([4 1], 30), 1 + abs(wave([4 1], 40))];
% params listed in an order unlike the layers', so name resolution is exercised
dag.params = struct('name', {'fc_b', 'bn1_x', 'conv1_f', 'bn1_m', 'fc_f', 'conv1_b', 'bn1_b'}, ...
                    'value', {wave([3 1], 60), single(moments), wave([3 3 2 4], 10), 1 + wave([4 1], 20), ...
                              wave([4 4 4 3], 50), wave([4 1], 11), wave([4 1], 21)});
dag.vars = struct('name', {'input', 'x1', 'x2', 'x3', 'prediction'}, 'precious', {0, 0, 0, 0, 0});
dag.meta = struct('normalization', struct('averageImage', single([1 2]), 'imageSize', [4 4 2]), ...
                  'classes', struct('description', {{'a', 'b', 'c'}}));
net = dag;
save('-v7', 'dagnn_v7.mat', 'net');
