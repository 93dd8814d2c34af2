"""ros2 launch tinyldm_ros nvs.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info

Starts nvs_node (parameters from config/nvs.yaml unless params_file says otherwise) and, with
use_rviz:=true, RViz with config/nvs.rviz. Both load the Fast DDS profile `fastdds_profile` (default:
the shipped one for large images; see tinyldm_ros/dds_profile.py).
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from tinyldm_ros.dds_profile import launch_actions as fastdds_profile_actions


def _nvs_node(context):
    overrides = {}
    model = LaunchConfiguration("model").perform(context)
    if model:
        overrides["model_dir"] = model
    frames = LaunchConfiguration("target_frames").perform(context)
    if frames:
        overrides["target_frames"] = [f.strip() for f in frames.split(",") if f.strip()]
    return [
        Node(
            package="tinyldm_ros",
            executable="nvs_node",
            name="nvs_node",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), overrides],
            remappings=[
                ("image", LaunchConfiguration("image")),
                ("camera_info", LaunchConfiguration("camera_info")),
                ("target_poses", LaunchConfiguration("target_poses")),
                *[(name, LaunchConfiguration(name)) for name in OBJECT_INPUTS],
            ],
            output="screen",
        )
    ]


# The optional object inputs (docs/node.md, "Isolating the object"): launch argument = topic remap.
OBJECT_INPUTS = {
    "mask": "object mask (mono8, same size as the image) from a segmentation node",
    "depth": "depth image aligned to the colour image (16UC1 mm / 32FC1 m)",
    "roi": "sensor_msgs/RegionOfInterest around the object",
    "detections": "vision_msgs/Detection2DArray (where vision_msgs is installed)",
}


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("tinyldm_ros")
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "model", default_value="", description="model folder (empty: models/default)"
            ),
            DeclareLaunchArgument("image", default_value="image", description="input image topic"),
            DeclareLaunchArgument("camera_info", default_value="camera_info", description="its camera_info"),
            DeclareLaunchArgument(
                "target_poses", default_value="target_poses", description="PoseArray targets"
            ),
            *[
                DeclareLaunchArgument(name, default_value=name, description=description)
                for name, description in OBJECT_INPUTS.items()
            ],
            DeclareLaunchArgument(
                "target_frames", default_value="", description="comma-separated TF optical frames of targets"
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([share, "config", "nvs.yaml"]),
                description="node parameters (YAML)",
            ),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
            DeclareLaunchArgument("use_rviz", default_value="false", description="also start RViz"),
            *fastdds_profile_actions(),
            OpaqueFunction(function=_nvs_node),
            Node(
                package="rviz2",
                executable="rviz2",
                arguments=["-d", PathJoinSubstitution([share, "config", "nvs.rviz"])],
                condition=IfCondition(LaunchConfiguration("use_rviz")),
            ),
        ]
    )
